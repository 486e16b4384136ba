//! RTP and RTCP output for one client: H.264 packetisation per RFC 6184
//! (single NAL unit packets, FU-A for large NALs), RTCP sender reports
//! (RFC 3550) and the `$`-prefixed interleaved framing of RFC 2326 §10.12
//! that carries both over the RTSP TCP connection. Pure byte-building: no I/O.

use bytes::{BufMut, BytesMut};

/// Largest RTP payload we emit. Irrelevant to TCP itself, but clients (and
/// hearth's own recorder) are written for camera-like packet sizes.
pub(crate) const MAX_PAYLOAD: usize = 1400;
const RTP_HEADER_LEN: usize = 12;
const PAYLOAD_TYPE: u8 = 96;
const FU_A: u8 = 28;
/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Per-client RTP state: identity, sequence numbering and the counters a
/// sender report needs.
#[derive(Debug)]
pub(crate) struct RtpSender {
    ssrc: u32,
    next_seq: u16,
    channel: u8,
    packets: u32,
    octets: u32,
}

impl RtpSender {
    /// `channel` is the interleaved RTP channel; RTCP goes on `channel + 1`.
    pub(crate) fn new(ssrc: u32, initial_seq: u16, channel: u8) -> Self {
        RtpSender { ssrc, next_seq: initial_seq, channel, packets: 0, octets: 0 }
    }

    pub(crate) fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Sequence number the next packet will carry (for `RTP-Info`).
    pub(crate) fn next_seq(&self) -> u16 {
        self.next_seq
    }

    pub(crate) fn set_channel(&mut self, channel: u8) {
        self.channel = channel;
    }

    /// Appends the packets of one access unit to `out`, all with `timestamp`;
    /// the marker bit goes on the very last packet, telling the client the
    /// picture is complete. Empty NALs are skipped.
    pub(crate) fn push_access_unit<'a>(
        &mut self,
        nals: impl IntoIterator<Item = &'a [u8]>,
        timestamp: u32,
        out: &mut BytesMut,
    ) {
        let mut nals = nals.into_iter().filter(|n| !n.is_empty()).peekable();
        while let Some(nal) = nals.next() {
            let last_nal = nals.peek().is_none();
            self.push_nal(nal, timestamp, last_nal, out);
        }
    }

    fn push_nal(&mut self, nal: &[u8], timestamp: u32, last_nal: bool, out: &mut BytesMut) {
        if nal.len() <= MAX_PAYLOAD {
            self.push_packet(&[], nal, timestamp, last_nal, out);
            return;
        }
        // FU-A: the NAL header byte is not sent as such; its F/NRI bits go in
        // the FU indicator and its type in the FU header of every fragment.
        let indicator = (nal[0] & 0xE0) | FU_A;
        let nal_type = nal[0] & 0x1F;
        let mut chunks = nal[1..].chunks(MAX_PAYLOAD - 2).peekable();
        let mut first = true;
        while let Some(chunk) = chunks.next() {
            let end = chunks.peek().is_none();
            let header = nal_type | if first { 0x80 } else { 0 } | if end { 0x40 } else { 0 };
            self.push_packet(&[indicator, header], chunk, timestamp, last_nal && end, out);
            first = false;
        }
    }

    /// One interleaved RTP packet: `$`, channel, length, RTP header, payload.
    fn push_packet(&mut self, prefix: &[u8], payload: &[u8], timestamp: u32, marker: bool, out: &mut BytesMut) {
        let payload_len = prefix.len() + payload.len();
        let len = RTP_HEADER_LEN + payload_len;
        out.reserve(4 + len);
        out.put_u8(b'$');
        out.put_u8(self.channel);
        out.put_u16(len as u16); // ≤ 12 + MAX_PAYLOAD, always fits
        out.put_u8(0x80); // version 2, no padding, extension or CSRCs
        out.put_u8(if marker { 0x80 | PAYLOAD_TYPE } else { PAYLOAD_TYPE });
        out.put_u16(self.next_seq);
        out.put_u32(timestamp);
        out.put_u32(self.ssrc);
        out.put_slice(prefix);
        out.put_slice(payload);
        self.next_seq = self.next_seq.wrapping_add(1);
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload_len as u32);
    }

    /// Appends an RTCP sender report on the RTCP channel mapping wall time
    /// `ntp` (64-bit NTP format) to RTP time `rtp_timestamp`.
    pub(crate) fn push_sender_report(&self, ntp: u64, rtp_timestamp: u32, out: &mut BytesMut) {
        const SR_LEN: usize = 28;
        out.reserve(4 + SR_LEN);
        out.put_u8(b'$');
        out.put_u8(self.channel.wrapping_add(1));
        out.put_u16(SR_LEN as u16);
        out.put_u8(0x80); // version 2, no padding, zero report blocks
        out.put_u8(200); // SR
        out.put_u16((SR_LEN / 4 - 1) as u16);
        out.put_u32(self.ssrc);
        out.put_u64(ntp);
        out.put_u32(rtp_timestamp);
        out.put_u32(self.packets);
        out.put_u32(self.octets);
    }
}

/// Converts a time since the Unix epoch to the 64-bit NTP timestamp format
/// (32.32 fixed-point seconds since 1900).
pub(crate) fn ntp_timestamp(since_unix: std::time::Duration) -> u64 {
    let secs = since_unix.as_secs().wrapping_add(NTP_UNIX_OFFSET);
    let frac = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parsed interleaved RTP packet.
    #[derive(Debug)]
    struct Pkt {
        channel: u8,
        marker: bool,
        seq: u16,
        ts: u32,
        ssrc: u32,
        payload: Vec<u8>,
    }

    fn parse(mut buf: &[u8]) -> Vec<Pkt> {
        let mut out = Vec::new();
        while !buf.is_empty() {
            assert_eq!(buf[0], b'$');
            let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
            let p = &buf[4..4 + len];
            assert_eq!(p[0], 0x80);
            out.push(Pkt {
                channel: buf[1],
                marker: p[1] & 0x80 != 0,
                seq: u16::from_be_bytes([p[2], p[3]]),
                ts: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
                ssrc: u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
                payload: p[12..].to_vec(),
            });
            buf = &buf[4 + len..];
        }
        out
    }

    /// Minimal RFC 6184 depacketiser for single NAL and FU-A packets.
    fn depacketize(pkts: &[Pkt]) -> Vec<Vec<u8>> {
        let mut nals = Vec::new();
        let mut cur: Option<Vec<u8>> = None;
        for p in pkts {
            let t = p.payload[0] & 0x1F;
            if t == FU_A {
                let h = p.payload[1];
                if h & 0x80 != 0 {
                    cur = Some(vec![(p.payload[0] & 0xE0) | (h & 0x1F)]);
                }
                cur.as_mut().unwrap().extend_from_slice(&p.payload[2..]);
                if h & 0x40 != 0 {
                    nals.push(cur.take().unwrap());
                }
            } else {
                nals.push(p.payload.clone());
            }
        }
        nals
    }

    #[test]
    fn small_nals_are_single_packets_with_marker_on_last() {
        let mut s = RtpSender::new(0xDEADBEEF, 65534, 2);
        let mut out = BytesMut::new();
        let nals: [&[u8]; 4] = [&[0x67, 1, 2], &[0x68, 3], &[], &[0x65; 1400]];
        s.push_access_unit(nals, 1234, &mut out);
        let pkts = parse(&out);
        assert_eq!(pkts.len(), 3);
        assert_eq!(pkts.iter().map(|p| p.seq).collect::<Vec<_>>(), [65534, 65535, 0]);
        assert_eq!(pkts.iter().map(|p| p.marker).collect::<Vec<_>>(), [false, false, true]);
        assert!(pkts.iter().all(|p| p.ts == 1234 && p.ssrc == 0xDEADBEEF && p.channel == 2));
        assert_eq!(pkts[2].payload.len(), 1400);
        assert_eq!(s.next_seq(), 1);
    }

    #[test]
    fn large_nal_is_fragmented_as_fu_a() {
        let nal: Vec<u8> = std::iter::once(0x65).chain((0..5000u32).map(|i| (i % 251) as u8)).collect();
        let mut s = RtpSender::new(1, 0, 0);
        let mut out = BytesMut::new();
        s.push_access_unit([&[0x06u8, 5][..], &nal], 90_000, &mut out);
        let pkts = parse(&out);
        // 5000 bytes of payload after the header byte, 1398 per fragment.
        assert_eq!(pkts.len(), 1 + 4);
        assert!(pkts.iter().all(|p| p.payload.len() <= MAX_PAYLOAD));
        assert_eq!(pkts[1].payload[0], 0x60 | FU_A);
        assert_eq!(pkts[1].payload[1], 0x80 | 5);
        assert_eq!(pkts[4].payload[1], 0x40 | 5);
        assert_eq!(pkts[2].payload[1], 5);
        assert!(pkts[4].marker && !pkts[3].marker);
        assert_eq!(depacketize(&pkts), vec![vec![0x06, 5], nal]);
    }

    #[test]
    fn marker_only_when_last_nal_is_fragmented() {
        let big = vec![0x41; 3000];
        let mut s = RtpSender::new(1, 0, 0);
        let mut out = BytesMut::new();
        s.push_access_unit([&big[..], &[0x41, 1][..]], 0, &mut out);
        let marks: Vec<bool> = parse(&out).iter().map(|p| p.marker).collect();
        assert_eq!(marks, [false, false, false, true]);
    }

    #[test]
    fn sender_report_layout() {
        let mut s = RtpSender::new(0x01020304, 0, 0);
        let mut out = BytesMut::new();
        s.push_access_unit([&[0x41u8, 1, 2, 3][..]], 7, &mut out);
        out.clear();
        s.push_sender_report(0x1122334455667788, 0xAABBCCDD, &mut out);
        assert_eq!(&out[..4], &[b'$', 1, 0, 28]);
        let sr = &out[4..];
        assert_eq!(&sr[..4], &[0x80, 200, 0, 6]);
        assert_eq!(&sr[4..8], &[1, 2, 3, 4]);
        assert_eq!(&sr[8..16], &0x1122334455667788u64.to_be_bytes());
        assert_eq!(&sr[16..20], &0xAABBCCDDu32.to_be_bytes());
        assert_eq!(&sr[20..24], &1u32.to_be_bytes()); // packets
        assert_eq!(&sr[24..28], &4u32.to_be_bytes()); // payload octets
    }

    #[test]
    fn ntp_conversion() {
        let t = ntp_timestamp(std::time::Duration::new(1, 500_000_000));
        assert_eq!(t >> 32, NTP_UNIX_OFFSET + 1);
        assert_eq!(t & 0xFFFF_FFFF, 1 << 31);
    }
}
