//! The `/.auth/*` endpoints and the authentication step of the pipeline.
//! (Sign-in arrives with the OIDC work; until then nothing is signed in.)
