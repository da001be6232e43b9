//! Generic netlink, just enough for IPVS: message and attribute encoding
//! (pure, byte-exact tested), family resolution through `nlctrl`, and a
//! blocking request/ack/dump exchange over a `rustix` netlink socket (no
//! `unsafe`, no C library). Native byte order, as netlink uses.

use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketType, sockopt};

pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_MULTI: u16 = 0x2;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

pub const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;

/// Longest wait for one kernel answer.
const RECV_TIMEOUT: Duration = Duration::from_secs(5);
const RECV_BUF: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum GenlError {
    #[error("netlink socket: {0}")]
    Socket(std::io::Error),
    #[error("the kernel has no generic netlink family `{0}` (module not loaded or not built)")]
    NoFamily(String),
    #[error("the kernel refused {what}: {source}")]
    Kernel {
        what: String,
        source: std::io::Error,
    },
    #[error("malformed netlink message: {0}")]
    Malformed(String),
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Attributes being appended to a message body.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Attrs(pub Vec<u8>);

impl Attrs {
    pub fn bytes(&mut self, kind: u16, payload: &[u8]) -> &mut Self {
        let len = 4 + payload.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(payload);
        self.0.resize(align4(self.0.len()), 0);
        self
    }
    pub fn u16(&mut self, kind: u16, v: u16) -> &mut Self {
        self.bytes(kind, &v.to_ne_bytes())
    }
    /// A u16 in network byte order (ports).
    pub fn be16(&mut self, kind: u16, v: u16) -> &mut Self {
        self.bytes(kind, &v.to_be_bytes())
    }
    pub fn u32(&mut self, kind: u16, v: u32) -> &mut Self {
        self.bytes(kind, &v.to_ne_bytes())
    }
    /// A NUL-terminated string.
    pub fn string(&mut self, kind: u16, s: &str) -> &mut Self {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        self.bytes(kind, &b)
    }
    pub fn nested(&mut self, kind: u16, inner: &Attrs) -> &mut Self {
        self.bytes(kind | NLA_F_NESTED, &inner.0)
    }
}

/// One whole message: nlmsghdr + genlmsghdr + attributes.
pub fn message(family: u16, flags: u16, seq: u32, cmd: u8, version: u8, attrs: &Attrs) -> Vec<u8> {
    let len = 16 + 4 + attrs.0.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&family.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&[cmd, version, 0, 0]);
    m.extend_from_slice(&attrs.0);
    m
}

/// A parsed attribute (type without the nested/byte-order flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr<'a> {
    pub kind: u16,
    pub payload: &'a [u8],
}

impl Attr<'_> {
    pub fn u16(&self) -> Option<u16> {
        Some(u16::from_ne_bytes(self.payload.get(..2)?.try_into().ok()?))
    }
    pub fn be16(&self) -> Option<u16> {
        Some(u16::from_be_bytes(self.payload.get(..2)?.try_into().ok()?))
    }
    pub fn u32(&self) -> Option<u32> {
        Some(u32::from_ne_bytes(self.payload.get(..4)?.try_into().ok()?))
    }
    pub fn string(&self) -> String {
        let end = self
            .payload
            .iter()
            .position(|b| *b == 0)
            .unwrap_or(self.payload.len());
        String::from_utf8_lossy(&self.payload[..end]).into_owned()
    }
}

/// Splits an attribute stream.
pub fn parse_attrs(mut b: &[u8]) -> Result<Vec<Attr<'_>>, GenlError> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([b[0], b[1]]));
        let kind = u16::from_ne_bytes([b[2], b[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            return Err(GenlError::Malformed(format!(
                "attribute {kind} claims {len} bytes, {} left",
                b.len()
            )));
        }
        out.push(Attr {
            kind,
            payload: &b[4..len],
        });
        b = &b[align4(len).min(b.len())..];
    }
    Ok(out)
}

/// A message the kernel sent back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<'a> {
    /// A generic netlink payload: command and the attribute bytes.
    Data {
        cmd: u8,
        attrs: &'a [u8],
    },
    /// `NLMSG_ERROR` with errno (0 = acknowledgement).
    Ack(i32),
    Done,
}

/// Splits a datagram into messages with the given sequence number.
pub fn parse_replies(mut b: &[u8], seq: u32) -> Result<Vec<Reply<'_>>, GenlError> {
    let mut out = Vec::new();
    while b.len() >= 16 {
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if len < 16 || len > b.len() {
            return Err(GenlError::Malformed(format!(
                "message claims {len} bytes, {} left",
                b.len()
            )));
        }
        let kind = u16::from_ne_bytes([b[4], b[5]]);
        let got_seq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
        let body = &b[16..len];
        b = &b[align4(len).min(b.len())..];
        if got_seq != seq {
            continue;
        }
        out.push(match kind {
            NLMSG_ERROR => {
                let e = body
                    .get(..4)
                    .ok_or_else(|| GenlError::Malformed("short NLMSG_ERROR".into()))?;
                Reply::Ack(i32::from_ne_bytes([e[0], e[1], e[2], e[3]]))
            }
            NLMSG_DONE => Reply::Done,
            _ => {
                let cmd = *body
                    .first()
                    .ok_or_else(|| GenlError::Malformed("no genl header".into()))?;
                Reply::Data {
                    cmd,
                    attrs: body.get(4..).unwrap_or_default(),
                }
            }
        });
    }
    Ok(out)
}

/// A bound generic netlink socket; requests are sequential.
pub struct Genl {
    fd: OwnedFd,
    seq: u32,
}

impl Genl {
    pub fn open() -> Result<Self, GenlError> {
        let err = |e: rustix::io::Errno| GenlError::Socket(e.into());
        let fd = rustix::net::socket(
            AddressFamily::NETLINK,
            SocketType::RAW,
            Some(netlink::GENERIC),
        )
        .map_err(err)?;
        rustix::net::bind(&fd, &SocketAddrNetlink::new(0, 0)).map_err(err)?;
        sockopt::set_socket_timeout(&fd, sockopt::Timeout::Recv, Some(RECV_TIMEOUT))
            .map_err(err)?;
        Ok(Self { fd, seq: 1 })
    }

    /// Sends one request and collects its replies' payloads until the ack
    /// (or `NLMSG_DONE` for dumps). `what` names it in errors.
    pub fn request(
        &mut self,
        family: u16,
        flags: u16,
        cmd: u8,
        version: u8,
        attrs: &Attrs,
        what: &str,
    ) -> Result<Vec<(u8, Vec<u8>)>, GenlError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let msg = message(family, flags | NLM_F_REQUEST, seq, cmd, version, attrs);
        let kernel = |e: rustix::io::Errno| GenlError::Kernel {
            what: what.to_string(),
            source: e.into(),
        };
        rustix::net::send(&self.fd, &msg, SendFlags::empty()).map_err(kernel)?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; RECV_BUF];
        loop {
            let (n, _) =
                rustix::net::recv(&self.fd, &mut buf[..], RecvFlags::empty()).map_err(kernel)?;
            for r in parse_replies(&buf[..n.min(buf.len())], seq)? {
                match r {
                    Reply::Data { cmd, attrs } => out.push((cmd, attrs.to_vec())),
                    Reply::Ack(0) | Reply::Done => return Ok(out),
                    Reply::Ack(e) => {
                        return Err(GenlError::Kernel {
                            what: what.to_string(),
                            source: std::io::Error::from_raw_os_error(-e),
                        });
                    }
                }
            }
        }
    }

    /// The numeric id of a generic netlink family (e.g. "IPVS").
    pub fn resolve(&mut self, name: &str) -> Result<u16, GenlError> {
        let mut a = Attrs::default();
        a.string(CTRL_ATTR_FAMILY_NAME, name);
        let replies = match self.request(
            GENL_ID_CTRL,
            NLM_F_ACK,
            CTRL_CMD_GETFAMILY,
            1,
            &a,
            "family lookup",
        ) {
            Err(GenlError::Kernel { source, .. })
                if source.raw_os_error() == Some(rustix::io::Errno::NOENT.raw_os_error()) =>
            {
                return Err(GenlError::NoFamily(name.to_string()));
            }
            r => r?,
        };
        replies
            .iter()
            .find_map(|(_, body)| {
                parse_attrs(body)
                    .ok()?
                    .iter()
                    .find(|a| a.kind == CTRL_ATTR_FAMILY_ID)?
                    .u16()
            })
            .ok_or_else(|| GenlError::NoFamily(name.to_string()))
    }
}

/// The `nlctrl` request resolving `name` (exposed for byte-exact tests).
pub fn family_request(name: &str, seq: u32) -> Vec<u8> {
    let mut a = Attrs::default();
    a.string(CTRL_ATTR_FAMILY_NAME, name);
    message(
        GENL_ID_CTRL,
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        CTRL_CMD_GETFAMILY,
        1,
        &a,
    )
}
