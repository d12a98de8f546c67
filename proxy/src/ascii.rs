//! Addresses written as ASCII straight into a buffer, for the per-request
//! path (`X-Forwarded-For`, the access log): an IPv4 address without the
//! `fmt` machinery, which costs more than the rest of the line.

use std::net::{IpAddr, SocketAddr};

use bytes::BufMut;

/// `ip` as `1.2.3.4` or `::1`.
pub fn put_ip(out: &mut impl BufMut, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            put_u8(out, a);
            for octet in [b, c, d] {
                out.put_u8(b'.');
                put_u8(out, octet);
            }
        }
        // Rare behind ALB: the standard formatting (its zero compression) is fine.
        IpAddr::V6(v6) => {
            use std::io::Write;
            let _ = write!(out.writer(), "{v6}");
        }
    }
}

/// `addr` as `1.2.3.4:80` or `[::1]:80`.
pub fn put_socket_addr(out: &mut impl BufMut, addr: SocketAddr) {
    match addr.ip() {
        ip @ IpAddr::V4(_) => put_ip(out, ip),
        ip @ IpAddr::V6(_) => {
            out.put_u8(b'[');
            put_ip(out, ip);
            out.put_u8(b']');
        }
    }
    out.put_u8(b':');
    out.put_slice(itoa::Buffer::new().format(addr.port()).as_bytes());
}

fn put_u8(out: &mut impl BufMut, n: u8) {
    if n >= 100 {
        out.put_u8(b'0' + n / 100);
    }
    if n >= 10 {
        out.put_u8(b'0' + n / 10 % 10);
    }
    out.put_u8(b'0' + n % 10);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_read_as_the_standard_formatting_writes_them() {
        let cases = [
            "0.0.0.0:0",
            "1.2.3.4:80",
            "10.0.100.255:8080",
            "255.255.255.255:65535",
            "[::1]:443",
            "[2001:db8::8:800:200c:417a]:1",
            "[::ffff:10.0.0.1]:80",
        ];
        for case in cases {
            let addr: SocketAddr = case.parse().unwrap();
            let mut out = Vec::new();
            put_socket_addr(&mut out, addr);
            assert_eq!(String::from_utf8(out).unwrap(), addr.to_string());
            let mut out = Vec::new();
            put_ip(&mut out, addr.ip());
            assert_eq!(String::from_utf8(out).unwrap(), addr.ip().to_string());
        }
    }
}
