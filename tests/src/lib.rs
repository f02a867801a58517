//! quicksand's test support: a virtual clock that quiche sees, an in-memory connection pair,
//! and test applications. Used by the integration tests in `tests/tests/`.

pub mod apps;
pub mod fuzzing;
pub mod h3;
pub mod many_streams;
pub mod pair;
pub mod scenario;

// The simulator is its own crate (tests/sim); the paths the suites use stay.
pub use quicksand_sim as sim;
pub use quicksand_sim::{clock, entropy, virtual_clock};
