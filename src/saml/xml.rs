//! The strict first parse of IdP XML and small helpers over roxmltree.
//!
//! roxmltree refuses any `<!DOCTYPE` by default (`allow_dtd = false`), so a
//! document can declare no entity and reference no external one; the
//! billion-laughs and XXE classes do not exist past this point. The node
//! bound and the depth bound keep a hostile document from costing more than
//! a small, fixed amount of memory and time (and keep the second parser,
//! inside the signature library, from recursing deeply).

use roxmltree::{Document, Node, ParsingOptions};

/// XML namespaces read by the SAML code.
pub const NS_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub const NS_ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";

/// Most nodes (elements, attributes' parents, text) in one document. A
/// response of a user in 1000 groups stays far below.
pub const MAX_NODES: u32 = 50_000;

/// Deepest element nesting accepted; a SAML response nests about 8 deep.
pub const MAX_DEPTH: usize = 40;

/// Why a document was refused before any SAML meaning was read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("the XML is not UTF-8")]
    NotUtf8,
    #[error("the XML declares a DTD (refused: no DTDs, no entities)")]
    Dtd,
    #[error("the XML is not well-formed or is too large: {0}")]
    Malformed(String),
    #[error("the XML nests deeper than {MAX_DEPTH} elements")]
    TooDeep,
}

/// Parses `text` with DTDs refused and the node bound, then checks the depth.
pub fn parse_strict(text: &str) -> Result<Document<'_>, XmlError> {
    let opts = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(text, opts).map_err(|e| match e {
        roxmltree::Error::DtdDetected => XmlError::Dtd,
        other => XmlError::Malformed(other.to_string()),
    })?;
    check_depth(doc.root())?;
    Ok(doc)
}

/// Depth of the deepest element, iteratively (no recursion on hostile input).
fn check_depth(root: Node<'_, '_>) -> Result<(), XmlError> {
    let mut stack = vec![(root, 0usize)];
    while let Some((node, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(XmlError::TooDeep);
        }
        for child in node.children().filter(Node::is_element) {
            stack.push((child, depth.saturating_add(1)));
        }
    }
    Ok(())
}

/// True when `node` is the element `{ns}local`.
pub fn is(node: Node<'_, '_>, ns: &str, local: &str) -> bool {
    node.is_element() && node.tag_name().name() == local && node.tag_name().namespace() == Some(ns)
}

/// The element children `{ns}local` of `node`.
pub fn children<'a, 'i>(
    node: Node<'a, 'i>,
    ns: &'a str,
    local: &'a str,
) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.children().filter(move |c| is(*c, ns, local))
}

/// The single child `{ns}local`: None when absent, Err when repeated.
pub fn one_child<'a, 'i>(
    node: Node<'a, 'i>,
    ns: &'a str,
    local: &'a str,
) -> Result<Option<Node<'a, 'i>>, String> {
    let mut it = children(node, ns, local);
    let first = it.next();
    if it.next().is_some() {
        return Err(format!("more than one {local} element"));
    }
    Ok(first)
}

/// Refuses a `<Conditions>` holding anything realmgate does not act on.
/// SAML core 2.0 §2.5.1 (and 1.1 §2.3.2.1): a condition that is not
/// understood makes the assertion's validity Indeterminate, which a relying
/// party must not take as valid; an IdP adds one (a `<Condition xsi:type>`
/// extension, a delegation restriction) to say "only if you can check this".
/// `known` are the children this reader checks or may safely ignore; the
/// only attributes the schema allows are the validity window's.
pub fn only_known_conditions(
    conditions: Node<'_, '_>,
    ns: &str,
    known: &[&str],
) -> Result<(), String> {
    if let Some(a) = conditions
        .attributes()
        .find(|a| a.namespace().is_some() || !matches!(a.name(), "NotBefore" | "NotOnOrAfter"))
    {
        return Err(format!(
            "the Conditions carry the attribute {}, which is not understood",
            a.name()
        ));
    }
    for c in conditions.children() {
        if c.is_text() && c.text().is_some_and(|t| !t.trim().is_empty()) {
            return Err("the Conditions hold text".into());
        }
        if !c.is_element() {
            continue;
        }
        let name = c.tag_name().name();
        if c.tag_name().namespace() != Some(ns) || !known.contains(&name) {
            return Err(format!(
                "the Conditions hold a {name} condition, which is not understood"
            ));
        }
    }
    Ok(())
}

/// The whole text of an element that must hold text only: every text and
/// CDATA child concatenated (a comment splits no value), and an element
/// child refused. Trimmed of XML whitespace.
pub fn text_only(node: Node<'_, '_>) -> Result<String, String> {
    let mut out = String::new();
    for child in node.children() {
        if child.is_element() {
            return Err(format!(
                "{} holds an element where text was expected",
                node.tag_name().name()
            ));
        }
        if child.is_text() {
            out.push_str(child.text().unwrap_or(""));
        }
    }
    Ok(out
        .trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
        .to_string())
}

/// Attribute names that act as XML IDs for signature references (SAML 2.0
/// `ID`, SAML 1.1 `AssertionID`, WS-Security `Id`, `xml:id`): the union of
/// what the signature library resolves, so no ID it can see goes unchecked.
pub fn is_id_attribute(local: &str) -> bool {
    matches!(local, "ID" | "Id" | "id" | "AssertionID")
}
