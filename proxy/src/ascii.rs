//! Addresses written as ASCII straight into a buffer, for the per-request
//! path (`X-Forwarded-For`, the access log): an IPv4 address without the
//! `fmt` machinery, which costs more than the rest of the line.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::BufMut;

/// `ip` as `1.2.3.4` or `::1`.
pub fn put_ip(out: &mut impl BufMut, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let (text, len) = v4_ascii(v4);
            out.put_slice(&text[..len]);
        }
        // Rare behind ALB: the standard formatting (its zero compression) is fine.
        IpAddr::V6(v6) => {
            use std::io::Write;
            let _ = write!(out.writer(), "{v6}");
        }
    }
}

/// `ip` as `1.2.3.4` in the first `len` bytes: built on the stack and
/// copied out once, where a `put_u8` per digit checks the buffer's room each.
fn v4_ascii(ip: Ipv4Addr) -> ([u8; 15], usize) {
    let mut text = [0u8; 15];
    let mut len = 0;
    let mut put = |b: u8| {
        text[len] = b;
        len += 1;
    };
    for (i, n) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            put(b'.');
        }
        if n >= 100 {
            put(b'0' + n / 100);
        }
        if n >= 10 {
            put(b'0' + n / 10 % 10);
        }
        put(b'0' + n % 10);
    }
    (text, len)
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
