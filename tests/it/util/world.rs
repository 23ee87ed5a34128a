//! The one test world: the demo IdP (mock Entra), an echo upstream and a
//! gateway in front of them, started from a [`Config`] by [`World::builder`].
//!
//! ```ignore
//! let w = World::builder()
//!     .server(r#"trusted_proxies = ["127.0.0.1/32"]"#)
//!     .connection(entra("contoso", "contoso.example").home_realm("contoso.example"))
//!     .route(echo_route("app", "app.test").public(&["/static/"]))
//!     .start()
//!     .await;
//! ```
//!
//! Each test file names its world with a marker type of its own,
//! `type World = util::World<Bearer>;`, and adds its helpers in an `impl World`
//! (`World::start()`: which tables; `w.token(ALICE)`...): the helpers of two
//! files never collide, the tests read as before, and the IdP, the upstream,
//! the preamble and the tables are built here only.

use std::any::Any;
use std::marker::PhantomData;

use realmgate::demo::idp::{self, Idp, IdpConfig};

use crate::util::fixtures::{fill, Config};
use crate::util::{EchoUpstream, TestGateway};

/// The mock IdP, an echo upstream and a gateway in front. `Suite` is the test
/// file's marker (its helpers are an `impl World<Suite>` there); `()` for none.
pub struct World<Suite = ()> {
    pub idp: Idp,
    pub upstream: EchoUpstream,
    pub gateway: TestGateway,
    /// What must live as long as the world (key files, a Redis server...).
    _keep: Vec<Box<dyn Any>>,
    _suite: PhantomData<Suite>,
}

/// Configures the IdP before the gateway starts.
type IdpSetup = Box<dyn FnOnce(&Idp)>;

/// How a [`World`] is made; see [`World::builder`].
pub struct WorldBuilder {
    idp: IdpConfig,
    setup: Vec<IdpSetup>,
    config: Config,
    keep: Vec<Box<dyn Any>>,
}

impl<Suite> World<Suite> {
    /// The demo IdP with its default users, the preamble, no tables yet.
    pub fn builder() -> WorldBuilder {
        WorldBuilder {
            idp: IdpConfig::demo_default(),
            setup: Vec::new(),
            config: Config::new(),
            keep: Vec::new(),
        }
    }
}

impl WorldBuilder {
    /// The IdP's users, tenants and clients (default: [`IdpConfig::demo_default`]).
    pub fn idp(mut self, config: IdpConfig) -> WorldBuilder {
        self.idp = config;
        self
    }

    /// Configures the IdP after it started, before the gateway starts (and
    /// fetches discovery).
    pub fn setup_idp(mut self, setup: impl FnOnce(&Idp) + 'static) -> WorldBuilder {
        self.setup.push(Box::new(setup));
        self
    }

    /// Lines added to `[server]`.
    pub fn server(mut self, lines: &str) -> WorldBuilder {
        self.config = self.config.server(lines);
        self
    }

    /// Lines added to `[session]`.
    pub fn session(mut self, lines: &str) -> WorldBuilder {
        self.config = self.config.session(lines);
        self
    }

    /// A `[[connection]]` table (see [`crate::util::entra`]).
    pub fn connection(self, table: impl std::fmt::Display) -> WorldBuilder {
        self.table(table)
    }

    /// A `[[route]]` table (see [`crate::util::echo_route`]).
    pub fn route(self, table: impl std::fmt::Display) -> WorldBuilder {
        self.table(table)
    }

    /// Any other table(s), in order after the ones before.
    pub fn table(mut self, toml: impl std::fmt::Display) -> WorldBuilder {
        self.config = self.config.table(toml);
        self
    }

    /// Keeps `thing` (a key file, a server process) alive as long as the world.
    pub fn keep(mut self, thing: impl Any) -> WorldBuilder {
        self.keep.push(Box::new(thing));
        self
    }

    /// Starts the demo IdP on 127.0.0.1:0, then the rest ([`WorldBuilder::start_with_idp`]).
    pub async fn start<Suite>(self) -> World<Suite> {
        let idp = idp::start(self.idp.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .expect("mock IdP starts");
        self.start_with_idp(idp).await
    }

    /// Runs the IdP setups, starts the echo upstream and the gateway on the config,
    /// `{idp}` and `{upstream}` filled in.
    pub async fn start_with_idp<Suite>(self, idp: Idp) -> World<Suite> {
        for setup in self.setup {
            setup(&idp);
        }
        let upstream = EchoUpstream::start().await;
        let toml = fill(&self.config.render(), &idp.base_url(), &upstream.url());
        let gateway = TestGateway::start(&toml).await;
        World {
            idp,
            upstream,
            gateway,
            _keep: self.keep,
            _suite: PhantomData,
        }
    }
}
