//! End-to-end tests live in `tests/tests/`: each starts the quickstart on free loopback ports
//! and drives it with a real MCP client from `tests/js` (installed by `scripts/test.sh` from
//! `tests/js/package-lock.json`).
