//! Benchmark and load-generation support for floodgate.

pub mod load;

use floodgate::flow::{Addr, FourTuple, V4Tuple};

/// The benchmark server: 198.18.0.1:80 (RFC 2544 benchmarking range).
pub const SERVER: ([u8; 4], u16) = ([198, 18, 0, 1], 80);

/// The `i`-th distinct client of the benchmark population: an address in
/// 198.18.0.0/15 and a port, scattered so that consecutive `i` look random.
/// A bijection on 33 bits (odd multiplies and xorshifts mod 2^33), so every
/// `i < 2^33` gives a different client and no key list needs storing.
pub fn client(i: u64) -> ([u8; 4], u16) {
    const MASK: u64 = (1 << 33) - 1;
    let mut x = i & MASK;
    x = x.wrapping_mul(0x9e37_79b9_7f4a_7c15) & MASK;
    x ^= x >> 17;
    x = x.wrapping_mul(0xd6e8_feb8_6659_fd93) & MASK;
    x ^= x >> 15;
    let ip = 0xc612_0000u32 + (x >> 16) as u32;
    (ip.to_be_bytes(), x as u16)
}

/// The `i`-th client's connection as the connection table keys it.
pub fn client_tuple(i: u64) -> FourTuple {
    let (ip, port) = client(i);
    FourTuple { local_addr: Addr::v4(SERVER.0), remote_addr: Addr::v4(ip), local_port: SERVER.1, remote_port: port }
}

/// The `i`-th client's connection over IPv6: the same address index and
/// port inside 2001:db8::/32 (RFC 3849), to the server's 2001:db8::1.
pub fn client_tuple_v6(i: u64) -> FourTuple {
    let (ip, port) = client(i);
    let mut remote = [0u8; 16];
    remote[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    remote[12..].copy_from_slice(&ip);
    let mut local = [0u8; 16];
    local[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    local[15] = 1;
    FourTuple { local_addr: Addr(local), remote_addr: Addr(remote), local_port: SERVER.1, remote_port: port }
}

/// The `i`-th client's connection in the compact IPv4 form.
pub fn client_v4(i: u64) -> V4Tuple {
    let (ip, port) = client(i);
    V4Tuple { local_addr: SERVER.0, remote_addr: ip, local_port: SERVER.1, remote_port: port }
}

/// A fast random index source for benchmarks (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    #[inline(always)]
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `0..n` by multiply-shift (no division).
    #[inline(always)]
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn clients_are_distinct_and_in_range() {
        let mut seen = HashSet::new();
        for i in 0..200_000 {
            let (ip, port) = client(i);
            assert_eq!(ip[0], 198);
            assert!(ip[1] == 18 || ip[1] == 19);
            assert!(seen.insert((ip, port)));
        }
    }
}
