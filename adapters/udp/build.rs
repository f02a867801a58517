//! Selects the platform back end.
//!
//! `qs_linux` turns on the Linux back end (control messages, `sendmmsg`/`recvmmsg`, GSO/GRO,
//! pktinfo, ECN, `SO_RXQ_OVFL`, `SO_TXTIME`). Everything else uses the portable back end
//! (one `sendto`/`recvmsg` per datagram, no control messages). Setting
//! `QUICKSAND_UDP_FORCE_FALLBACK=1` at build time selects the portable back end on Linux too,
//! so that it can be built and tested here.

fn main() {
    println!("cargo:rustc-check-cfg=cfg(qs_linux)");
    println!("cargo:rerun-if-env-changed=QUICKSAND_UDP_FORCE_FALLBACK");
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let forced = std::env::var("QUICKSAND_UDP_FORCE_FALLBACK")
        .map(|v| !v.is_empty() && v != "0")
        .unwrap_or(false);
    if os == "linux" && !forced {
        println!("cargo:rustc-cfg=qs_linux");
    }
}
