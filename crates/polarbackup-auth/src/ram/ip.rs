//! IPv4/IPv6 addresses and CIDR blocks for `IpAddress`/`NotIpAddress`, without a dependency.

use std::net::IpAddr;

/// A network: a single address is a /32 (IPv4) or /128 (IPv6) block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    /// Host bits already cleared, so `10.0.0.5/24` and `10.0.0.0/24` are equal.
    network: IpAddr,
    prefix: u8,
}

/// Parses an address, folding IPv4-mapped IPv6 (`::ffff:1.2.3.4`, what a
/// dual-stack socket reports) to plain IPv4 so it meets IPv4 policies.
pub(crate) fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

impl Cidr {
    /// `a.b.c.d`, `a.b.c.d/n`, an IPv6 address or `v6/n`. The prefix is plain
    /// decimal digits (no sign), at most 32 or 128. Host bits may be set;
    /// they are ignored, as RAM and AWS ignore them.
    pub(crate) fn parse(s: &str) -> Option<Cidr> {
        let (addr, prefix) = match s.split_once('/') {
            None => {
                let ip = parse_ip(s)?;
                return Some(Cidr {
                    network: ip,
                    prefix: max_prefix(ip),
                });
            }
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, p),
        };
        if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let prefix: u8 = prefix.parse().ok()?;
        if prefix > max_prefix(addr) {
            return None;
        }
        Some(Cidr {
            network: mask(addr, prefix),
            prefix,
        })
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        matches!(
            (ip, self.network),
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_))
        ) && mask(ip, self.prefix) == self.network
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        parse_ip(s).unwrap()
    }

    #[test]
    fn v4_blocks() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.255.1.2")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("1.2.3.4")));
        assert!(!Cidr::parse("0.0.0.0/0").unwrap().contains(ip("::1")));
        assert_eq!(Cidr::parse("10.0.0.5/24"), Cidr::parse("10.0.0.0/24"));
        assert!(Cidr::parse("1.2.3.4").unwrap().contains(ip("1.2.3.4")));
        assert!(!Cidr::parse("1.2.3.4").unwrap().contains(ip("1.2.3.5")));
    }

    #[test]
    fn v6_blocks_and_mapped_v4() {
        let c = Cidr::parse("2001:db8::/32").unwrap();
        assert!(c.contains(ip("2001:db8:1::1")));
        assert!(!c.contains(ip("2001:db9::1")));
        assert!(Cidr::parse("127.0.0.0/8")
            .unwrap()
            .contains(ip("::ffff:127.0.0.1")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("::1")));
    }

    #[test]
    fn refuses_malformed() {
        for s in [
            "",
            "1.2.3",
            "1.2.3.4/33",
            "1.2.3.4/",
            "1.2.3.4/+8",
            "1.2.3.4/-1",
            "::/129",
            "a.b.c.d",
            "1.2.3.4/8/8",
            " 1.2.3.4",
            "01.2.3.4",
        ] {
            assert_eq!(Cidr::parse(s), None, "{s:?}");
        }
    }
}
