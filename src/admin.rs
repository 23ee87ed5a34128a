//! Admin listener: `/healthz`, `/readyz` (readiness latch), `/metrics`,
//! `POST /sessions/revoke`.
//!
//! OWNER: engine-ops helper.
