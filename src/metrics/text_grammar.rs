//! A strict reader of the Prometheus text exposition format 0.0.4, for tests:
//! what `/metrics` answers by default must be accepted by the strictest
//! scraper, line by line.
//!
//! Checked: every line is a `# HELP`, a `# TYPE` or a sample (no other
//! comment: no `# EOF`, no `# UNIT`); names and label names match the
//! format's character sets; label values and HELP texts use only the
//! format's escapes; each family has at most one HELP and one TYPE, which
//! comes before its samples and is one of `counter`, `gauge`, `histogram`,
//! `summary`, `untyped` (no OpenMetrics `info`, `stateset`, `unknown`);
//! every sample belongs to the family announced last, by the names that
//! type allows (a counter's samples carry the family's name as it is, so a
//! counter whose samples end in `_total` is typed as `x_total`; a histogram
//! has `_bucket` with `le`, `_sum` and `_count`, and each series an `+Inf`
//! bucket equal to its count); every sample's family has a TYPE line (so an
//! OpenMetrics `_created` sample is refused); families are not split; a value is a Go
//! float, optionally followed by an integer timestamp, and nothing else (no
//! exemplar).

use std::collections::{HashMap, HashSet};

/// The first problem of `text`, with its line number.
pub(crate) fn check(text: &str) -> Result<(), String> {
    let mut reader = Reader::default();
    for (i, line) in text.split('\n').enumerate() {
        reader
            .line(line)
            .map_err(|e| format!("line {}: {e}: {line:?}", i + 1))?;
    }
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the last line has no newline".into());
    }
    reader.finish()
}

#[derive(Default)]
struct Reader {
    /// Families with a HELP or TYPE line or a sample, in order.
    seen: HashSet<String>,
    helped: HashSet<String>,
    typed: HashMap<String, String>,
    /// The family the last line was about.
    current: Option<String>,
    /// Histogram series (family, labels without `le`) -> (+Inf bucket, count).
    histograms: HashMap<(String, String), (Option<String>, Option<String>)>,
}

impl Reader {
    fn line(&mut self, line: &str) -> Result<(), String> {
        if line.is_empty() {
            return Ok(());
        }
        if let Some(comment) = line.strip_prefix('#') {
            return self.comment(comment);
        }
        self.sample(line)
    }

    fn comment(&mut self, comment: &str) -> Result<(), String> {
        let comment = comment.trim_start_matches([' ', '\t']);
        let (keyword, rest) = comment.split_once(' ').unwrap_or((comment, ""));
        let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
        match keyword {
            "HELP" => {
                metric_name(name)?;
                self.enter(name)?;
                if !self.helped.insert(name.to_string()) {
                    return Err("a second HELP line for this family".into());
                }
                help_text(value)
            }
            "TYPE" => {
                metric_name(name)?;
                self.enter(name)?;
                if !matches!(
                    value,
                    "counter" | "gauge" | "histogram" | "summary" | "untyped"
                ) {
                    return Err(format!("{value:?} is not a 0.0.4 type"));
                }
                if self.typed.contains_key(name) {
                    return Err("a second TYPE line for this family".into());
                }
                self.typed.insert(name.to_string(), value.to_string());
                Ok(())
            }
            _ => Err("a comment that is neither HELP nor TYPE".into()),
        }
    }

    fn sample(&mut self, line: &str) -> Result<(), String> {
        let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
        let name = &line[..name_end];
        metric_name(name)?;
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(after) = rest.strip_prefix('{') {
            rest = label_set(after, &mut labels)?;
        }
        let rest = rest
            .strip_prefix(' ')
            .ok_or("no space before the value")?
            .trim_start_matches(' ');
        let mut fields = rest.split(' ');
        let value = fields.next().unwrap_or("");
        go_float(value)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .map_err(|_| format!("{ts:?} after the value is not a timestamp"))?;
        }
        if fields.next().is_some() {
            return Err("more after the value and timestamp (an exemplar?)".into());
        }
        let family = self.family_of(name, &labels)?;
        if !self.typed.contains_key(&family) {
            // Also what an OpenMetrics `_created` sample, or a counter typed
            // without the `_total` its samples carry, looks like.
            return Err(format!("a sample of {family}, which has no TYPE line"));
        }
        self.enter(&family)?;
        if self.typed.get(&family).map(String::as_str) == Some("histogram") {
            let series = labels
                .iter()
                .filter(|(k, _)| k != "le")
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect::<Vec<_>>()
                .join(",");
            let entry = self.histograms.entry((family, series)).or_default();
            if name.ends_with("_bucket") {
                let le = labels
                    .iter()
                    .find(|(k, _)| k == "le")
                    .map(|(_, v)| v.as_str())
                    .ok_or("a histogram bucket without le")?;
                go_float(le).map_err(|e| format!("le: {e}"))?;
                if le == "+Inf" {
                    entry.0 = Some(value.to_string());
                }
            } else if name.ends_with("_count") {
                entry.1 = Some(value.to_string());
            }
        }
        Ok(())
    }

    /// The family a sample belongs to: the current one, by the names its
    /// type allows.
    fn family_of(&self, name: &str, labels: &[(String, String)]) -> Result<String, String> {
        let Some(current) = &self.current else {
            return Ok(name.to_string());
        };
        let kind = self.typed.get(current).map_or("untyped", String::as_str);
        let allowed: &[&str] = match kind {
            "histogram" => &["_bucket", "_sum", "_count"],
            "summary" => &["", "_sum", "_count"],
            _ => &[""],
        };
        for suffix in allowed {
            if name.strip_suffix(suffix) == Some(current.as_str()) {
                if kind == "summary"
                    && suffix.is_empty()
                    && !labels.iter().any(|(k, _)| k == "quantile")
                {
                    return Err("a summary sample without quantile".into());
                }
                return Ok(current.clone());
            }
        }
        // Not the current family: a new, untyped one (checked by `enter`).
        Ok(name.to_string())
    }

    /// Moves to `family`; a family left earlier may not come back.
    fn enter(&mut self, family: &str) -> Result<(), String> {
        if self.current.as_deref() == Some(family) {
            return Ok(());
        }
        if !self.seen.insert(family.to_string()) {
            return Err(format!("family {family} is split"));
        }
        self.current = Some(family.to_string());
        Ok(())
    }

    fn finish(self) -> Result<(), String> {
        for ((family, series), (inf, count)) in &self.histograms {
            match (inf, count) {
                (Some(inf), Some(count)) if inf == count => {}
                _ => {
                    return Err(format!(
                        "histogram {family}{{{series}}}: +Inf bucket {inf:?} and count {count:?}"
                    ))
                }
            }
        }
        Ok(())
    }
}

fn metric_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':');
    ok.then_some(())
        .ok_or_else(|| format!("{name:?} is not a metric name"))
}

fn label_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.starts_with("__");
    ok.then_some(())
        .ok_or_else(|| format!("{name:?} is not a label name"))
}

/// `name="value",…}` (a trailing comma allowed); returns what follows `}`.
fn label_set<'a>(mut s: &'a str, out: &mut Vec<(String, String)>) -> Result<&'a str, String> {
    loop {
        if let Some(rest) = s.strip_prefix('}') {
            return Ok(rest);
        }
        let (name, rest) = s.split_once("=\"").ok_or("a label without =\"")?;
        label_name(name)?;
        if out.iter().any(|(k, _)| k == name) {
            return Err(format!("label {name} twice"));
        }
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("an unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    _ => return Err("an escape other than \\\\, \\\" or \\n".into()),
                },
                Some((_, '\n')) => return Err("a newline in a label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        out.push((name.to_string(), value));
        s = &rest[end + 1..];
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else if !s.starts_with('}') {
            return Err("labels not separated by a comma".into());
        }
    }
}

fn help_text(text: &str) -> Result<(), String> {
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' && !matches!(chars.next(), Some('\\' | 'n')) {
            return Err("a HELP escape other than \\\\ or \\n".into());
        }
    }
    Ok(())
}

/// What Go's `strconv.ParseFloat` accepts for a sample value (decimal
/// forms; `NaN`, `+Inf`, `-Inf`).
fn go_float(v: &str) -> Result<(), String> {
    let special = matches!(v, "NaN" | "+Inf" | "-Inf" | "Inf");
    let digits = v.trim_start_matches(['+', '-']);
    let plain = !digits.is_empty()
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        && digits
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit() || b == b'.')
        && v.parse::<f64>().is_ok();
    (special || plain)
        .then_some(())
        .ok_or_else(|| format!("{v:?} is not a sample value"))
}

#[cfg(test)]
mod tests {
    use super::check;

    const GOOD: &str = "# HELP a_total A counter.\n# TYPE a_total counter\na_total{x=\"1\"} 3\na_total{x=\"q\\\"\\\\\\n\"} 0\n\
# HELP h Latency.\n# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.75\nh_count 2\n\
# TYPE u untyped\nu 1 1700000000000\n# HELP g_info Build.\n# TYPE g_info gauge\ng_info{v=\"1\"} 1\n";

    #[test]
    fn accepts_the_format_with_every_kind_it_has() {
        check(GOOD).unwrap();
        check("").unwrap();
    }

    #[test]
    fn refuses_what_openmetrics_adds_and_what_a_strict_parser_refuses() {
        for (bad, why) in [
            ("# EOF\n", "EOF"),
            ("# TYPE a counter\n# UNIT a seconds\n", "UNIT"),
            (
                "# TYPE a counter\na_total 1\n",
                "counter typed without _total",
            ),
            (
                "# TYPE a_total counter\na_total 1\na_created 5\n",
                "created sample",
            ),
            ("# TYPE b info\nb_info 1\n", "info type"),
            ("# TYPE b unknown\nb 1\n", "unknown type"),
            ("# TYPE b stateset\nb 1\n", "stateset type"),
            (
                "# TYPE a_total counter\na_total 1 # {t=\"1\"} 1\n",
                "exemplar",
            ),
            (
                "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n",
                "split family",
            ),
            ("a 1\n", "no TYPE"),
            ("# TYPE a gauge\n# TYPE a gauge\na 1\n", "second TYPE"),
            (
                "# HELP a x\n# HELP a y\n# TYPE a gauge\na 1\n",
                "second HELP",
            ),
            ("a 1\n# TYPE a gauge\n", "TYPE after samples"),
            (
                "# HELP a bad \\t escape\n# TYPE a gauge\na 1\n",
                "HELP escape",
            ),
            ("# TYPE a gauge\na{x=\"\\t\"} 1\n", "label escape"),
            ("# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n", "label twice"),
            ("# TYPE a gauge\na{__x=\"1\"} 1\n", "reserved label name"),
            ("# TYPE a gauge\na{x=\"1\"y=\"2\"} 1\n", "no comma"),
            ("# TYPE a-b gauge\na-b 1\n", "metric name"),
            ("# TYPE a gauge\na one\n", "value"),
            ("# TYPE a gauge\na 1", "no final newline"),
            (
                "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
                "no +Inf",
            ),
            (
                "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n",
                "+Inf != count",
            ),
            ("# TYPE h histogram\nh_bucket 1\n", "bucket without le"),
            ("# comment\n", "other comment"),
        ] {
            assert!(check(bad).is_err(), "accepted ({why}): {bad:?}");
        }
    }
}
