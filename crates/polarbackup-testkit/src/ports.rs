//! Free loopback ports for test servers, chosen where no client socket can take them later.
//!
//! A port the kernel hands out for `bind(0)` lies in its ephemeral range, the same range it
//! uses for the local end of outgoing connections. A server that is stopped and started again
//! on the same port (a fault test's restart) can then find it taken by some unrelated client
//! connection. Ports below that range are never given to clients, so a restart there only
//! races other test servers, which pick at random among ~20,000 ports.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;

/// The lowest port chosen (below it lie well-known services).
const FLOOR: u16 = 10_000;

/// A port that was free a moment ago on 127.0.0.1, below the kernel's ephemeral range when
/// there is room for it (otherwise one the kernel picks).
pub fn free_port() -> u16 {
    let top = ephemeral_start().unwrap_or(0);
    if top > FLOOR + 1_000 {
        for i in 0..1_000 {
            let port = FLOOR + (random(i) % u64::from(top - FLOOR)) as u16;
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    kernel_port()
}

/// A port the kernel picked for `bind(0)` (in its ephemeral range).
pub fn kernel_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// The first port of the kernel's range for outgoing connections.
fn ephemeral_start() -> Option<u16> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    range.split_whitespace().next()?.parse().ok()
}

fn random(i: usize) -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_usize(i);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_lie_below_the_ephemeral_range_and_are_bindable() {
        let start = ephemeral_start().expect("a Linux kernel's port range");
        for _ in 0..20 {
            let port = free_port();
            if start > FLOOR + 1_000 {
                assert!((FLOOR..start).contains(&port), "{port} vs {start}");
            } else {
                assert_ne!(port, 0, "no room below {start}: the kernel's pick");
            }
            TcpListener::bind(("127.0.0.1", port)).expect("free");
        }
    }
}
