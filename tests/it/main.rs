//! Integration tests, built as one binary. Helpers live in `util` (echo
//! upstream, gateway on port 0) and `node` (the npm-based real parts).

mod assertion;
mod bearer;
mod browser;
mod demo_command;
mod deploy;
mod entra;
mod entra_credentials;
mod entra_production;
mod forward_auth;
mod hostile;
mod id_token;
mod ldap;
mod login_flow;
mod monitoring;
mod node;
mod node_tools;
mod oauth2_proxy;
mod pages_browser;
mod proxying;
mod real_provider;
mod redis_gateway;
mod redis_tls;
mod redis_util;
mod replicas;
mod saml_idp;
mod saml_login;
mod saml_more;
mod saml_real_idp;
mod server;
mod sessions;
mod signin;
mod util;
