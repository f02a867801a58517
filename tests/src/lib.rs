//! quicksand's test support: a virtual clock that quiche sees, an in-memory connection pair,
//! and test applications. Used by the integration tests in `tests/tests/`.

pub mod apps;
pub mod clock;
pub mod entropy;
pub mod fuzzing;
pub mod h3;
pub mod many_streams;
pub mod pair;
pub mod scenario;
pub mod sim;
