//! A two-armed shard (`Endpoint::set_back_mac`): every frame goes out from
//! the MAC of its connection's arm, and the sink is told which before the
//! frame is written (`TxSink::send_from`), so the link writes it straight
//! into that arm (`link::xdp::arms`). Active opens belong to the back arm,
//! clients to the front; a stateless reply answers from the MAC its frame
//! came to.

use super::*;

const BACK_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
const BACKEND_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xbe];
const BACKEND_PORT: u16 = 8080;
const SOURCE_PORT: u16 = 10000;

both_families!(each_connection_sends_from_the_mac_of_its_arm, without_a_back_arm_everything_leaves_from_the_front);

/// A frame as sent: the source its sender announced (`send_from`), the
/// Ethernet source and destination, the segment.
type Sent = (Option<[u8; 6]>, [u8; 6], [u8; 6], S);

/// Frames sent, each with the source its sender announced (`send_from`).
#[derive(Default)]
struct Announced {
    frames: Vec<(Option<[u8; 6]>, Vec<u8>)>,
}

impl Announced {
    fn push<F: FnOnce(&mut [u8]) -> usize>(&mut self, src: Option<[u8; 6]>, write: F) -> bool {
        let mut b = vec![0u8; 2048];
        let n = write(&mut b);
        if n > 0 {
            b.truncate(n);
            self.frames.push((src, b));
        }
        true
    }

    /// (announced source, Ethernet source, Ethernet destination, segment) of each frame.
    fn seen(&self) -> Vec<Sent> {
        self.frames.iter().map(|(a, f)| (*a, mac_at(f, 6), mac_at(f, 0), parse(f).1)).collect()
    }
}

impl TxSink for Announced {
    fn send<F: FnOnce(&mut [u8]) -> usize>(&mut self, write: F) -> bool {
        self.push(None, write)
    }
    fn send_from<F: FnOnce(&mut [u8]) -> usize>(&mut self, src: &[u8; 6], write: F) -> bool {
        self.push(Some(*src), write)
    }
}

fn mac_at(frame: &[u8], at: usize) -> [u8; 6] {
    frame[at..at + 6].try_into().unwrap()
}

/// A backend's end (an address of the client's family, another port).
fn backend(h: &Harness) -> ([u8; 6], Addr, u16) {
    (BACKEND_MAC, h.family.client(), BACKEND_PORT)
}

/// Our backend-side end, as the backend's frames name it (to `to_mac`).
fn source(h: &Harness, to_mac: [u8; 6]) -> ([u8; 6], Addr, u16) {
    (to_mac, h.family.server(), SOURCE_PORT)
}

/// Opens towards the backend; returns the SYN's frame as `Announced` saw it.
fn open_backend(h: &mut Harness) -> (Handle, Sent) {
    let (l, r) = (source(h, [0; 6]), backend(h));
    let local = std::net::SocketAddr::new(l.1.to_ip(), l.2);
    let remote = std::net::SocketAddr::new(r.1.to_ip(), r.2);
    let b = h.ep.connect(h.now, local, remote, BACKEND_MAC).unwrap();
    let mut tx = Announced::default();
    h.ep.flush(h.now, &mut tx);
    let mut seen = tx.seen();
    assert_eq!(seen.len(), 1, "one SYN");
    (b, seen.remove(0))
}

/// Delivers `frame`; returns what went out, an in-place reply first (with
/// no announced source: the link sends it on the arm it came in on).
fn deliver(h: &mut Harness, mut frame: Vec<u8>) -> Vec<Sent> {
    let mut tx = Announced::default();
    if let RxAction::Transmit(n) = h.ep.on_frame(h.now, &mut frame, &mut tx) {
        tx.frames.insert(0, (None, frame[..n].to_vec()));
    }
    h.ep.flush(h.now, &mut tx);
    while let Some(e) = h.ep.poll_event() {
        h.events.push(e);
    }
    tx.seen()
}

fn each_connection_sends_from_the_mac_of_its_arm(f: Family) {
    let mut h = Harness::new_over(f, TcpConfig::default());
    h.ep.set_back_mac(BACK_MAC);
    let (c, _) = h.establish();

    // The backend side: SYN from the back MAC, announced as such.
    let (b, (announced, src, dst, syn_out)) = open_backend(&mut h);
    assert_eq!(syn_out.control, SYN);
    assert_eq!((announced, src, dst), (Some(BACK_MAC), BACK_MAC, BACKEND_MAC));

    // Its SYN-ACK comes to the back MAC; the ACK and data go out from it.
    let synack = S { mss: Some(1460), ..seg(SYN | ACK, CLIENT_ISN, syn_out.seq + 1) };
    let frame = frame_of(&synack, backend(&h), source(&h, BACK_MAC));
    let out = deliver(&mut h, frame);
    assert_eq!(h.ep.state(b), Some(State::Established));
    assert!(out.iter().all(|o| (o.0, o.1, o.2) == (Some(BACK_MAC), BACK_MAC, BACKEND_MAC)), "{out:?}");
    h.ep.write(b, b"to the backend").unwrap();
    h.ep.write(c, b"to the client").unwrap();
    let mut tx = Announced::default();
    h.ep.flush(h.now, &mut tx);
    let mut seen = tx.seen();
    seen.sort_by_key(|o| o.1);
    let by_mac: Vec<_> = seen.iter().map(|o| (o.0, o.1, o.2, o.3.payload.as_slice())).collect();
    assert_eq!(
        by_mac,
        [
            (Some(SERVER_MAC), SERVER_MAC, CLIENT_MAC, &b"to the client"[..]),
            (Some(BACK_MAC), BACK_MAC, BACKEND_MAC, &b"to the backend"[..]),
        ]
    );

    // Stateless replies answer from the MAC their frame came to: an ACK
    // for no connection gets an RST on either arm.
    let stray = seg(ACK, CLIENT_ISN, SeqNumber(7));
    let mut lost = source(&h, BACK_MAC);
    lost.2 = SOURCE_PORT + 1;
    let frame = frame_of(&stray, backend(&h), lost);
    let back_rst = deliver(&mut h, frame);
    assert_eq!(back_rst.len(), 1);
    assert_eq!((back_rst[0].1, back_rst[0].2, back_rst[0].3.control), (BACK_MAC, BACKEND_MAC, RST));
    h.client_port += 1;
    let frame = frame_of(&stray, h.client_end(), h.server_end());
    let front_rst = deliver(&mut h, frame);
    assert_eq!(front_rst.len(), 1);
    assert_eq!((front_rst[0].1, front_rst[0].2, front_rst[0].3.control), (SERVER_MAC, CLIENT_MAC, RST));
}

fn without_a_back_arm_everything_leaves_from_the_front(f: Family) {
    let mut h = Harness::new_over(f, TcpConfig::default());
    let (_, (announced, src, dst, _)) = open_backend(&mut h);
    assert_eq!((announced, src, dst), (Some(SERVER_MAC), SERVER_MAC, BACKEND_MAC));
    // A frame to some other MAC (the link passed it up) is still answered from ours.
    let stray = seg(ACK, CLIENT_ISN, SeqNumber(7));
    let frame = frame_of(&stray, backend(&h), source(&h, BACK_MAC));
    let out = deliver(&mut h, frame);
    assert_eq!((out[0].1, out[0].3.control), (SERVER_MAC, RST));
}

#[test]
fn a_copied_frame_names_its_own_source() {
    // `send_copy` carries the in-place replies to frames another shard
    // handed over: the arm is read from the frame.
    let mut frame = vec![0u8; 60];
    frame[..6].copy_from_slice(&BACKEND_MAC);
    frame[6..12].copy_from_slice(&BACK_MAC);
    let mut tx = Announced::default();
    assert!(tx.send_copy(&frame));
    assert!(tx.send_copy(&frame[..8]), "a runt has no source to name");
    let announced: Vec<_> = tx.frames.iter().map(|(a, f)| (*a, f.len())).collect();
    assert_eq!(announced, [(Some(BACK_MAC), 60), (None, 8)]);
}
