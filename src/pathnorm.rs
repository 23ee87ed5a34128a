//! pathnorm
