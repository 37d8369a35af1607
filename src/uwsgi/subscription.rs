//! Encoding and decoding of uWSGI subscription packets (sans-IO).
//!
//! The tool sends these to the fastrouter's subscription server to drain a
//! vassal before touching it (unsubscribe), to undo a drain that ended
//! before its touch and to announce a reloaded vassal early (subscribe). A
//! vassal that accepts but never announces is repaired through its master
//! FIFO instead (`runtime::fifo`), not with these packets. Sending is done by
//! `runtime::dgram`; this module only builds and reads bytes.
//!
//! Wire format (uWSGI 2.0, `core/subscription.c` `uwsgi_subscription_ub`):
//! a uwsgi packet header `modifier1 = 224` (u8), `datasize` (u16 LE, size of
//! the vars), `modifier2` (u8: 0 subscribe, anything else unsubscribe), then
//! the vars as `(u16 LE keylen, key, u16 LE vallen, value)`.
//!
//! What the subscription server needs to accept a subscribe (read in
//! `plugins/corerouter/cr_common.c` and `uwsgi_add_subscribe_node`):
//! - `key` and `address`; the address must be 1..=255 bytes (it is copied into
//!   `char name[0xff]`), the key fits `char key[0xff]` with its NUL.
//! - `modifier1`/`modifier2` are copied into the node only when the node is
//!   *created*; the vassal's later announces never change them. A re-subscribe
//!   must therefore carry the vassal's own modifiers, or requests are routed
//!   with the wrong modifier until the node is recreated.
//! - `cores` and `load` are only shown in stats; an absent `weight` reads as
//!   0, which the server turns into 1. The vassal's next announce overwrites
//!   all three, so they are optional here.
//! - The server reads with `recv(fd, buf, 4096)`: a longer datagram would be
//!   silently truncated, so we refuse to build one.

use std::fmt;

/// uwsgi `modifier1` of every subscription packet.
pub const MODIFIER1: u8 = 224;

/// The subscription server's receive buffer (`char bbuf[4096]`).
pub const MAX_PACKET: usize = 4096;

/// Longest address the server accepts (`address_len > 0xff` is dropped).
pub const MAX_ADDRESS: usize = 0xff;

/// Longest key that fits the server's `char key[0xff]` with its NUL.
pub const MAX_KEY: usize = 0xff - 1;

/// Subscribe or unsubscribe: the header's `modifier2` byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Subscribe,
    Unsubscribe,
}

impl Kind {
    fn header_byte(self) -> u8 {
        match self {
            Kind::Subscribe => 0,
            Kind::Unsubscribe => 1,
        }
    }
}

/// Everything a subscription announce can carry that matters to a node.
/// Optional fields are left out of the packet when `None`, which the server
/// reads as 0 (as if the vassal had sent 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    pub key: String,
    /// The node name: exactly the string the vassal subscribes with.
    pub address: String,
    pub modifier1: u8,
    /// The `modifier2` *var* (subscribe2 `modifier2=`), not the header byte.
    pub modifier2: u8,
    pub cores: Option<u64>,
    pub load: Option<u64>,
    pub weight: Option<u64>,
}

impl Announce {
    /// An announce with only what subpkt.py sends: key, address, modifier1,
    /// and modifier2 0.
    pub fn new(key: &str, address: &str, modifier1: u8) -> Announce {
        Announce {
            key: key.to_string(),
            address: address.to_string(),
            modifier1,
            modifier2: 0,
            cores: None,
            load: None,
            weight: None,
        }
    }
}

/// Why a packet could not be built or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A var name or value longer than its u16 length prefix allows.
    VarTooLong { name: String, len: usize },
    /// The whole packet would not fit the server's receive buffer.
    PacketTooLarge { len: usize },
    /// The key is empty or does not fit the server's slot.
    BadKey { len: usize },
    /// The address is empty or does not fit the server's node name.
    BadAddress { len: usize },
    /// `modifier1` must be a u8 on the wire side of uWSGI.
    Modifier1OutOfRange(i64),
    /// Decoding: fewer bytes than the header or a var length announces.
    Truncated,
    /// Decoding: header `modifier1` is not 224.
    NotSubscription { modifier1: u8 },
    /// Decoding: header `modifier2` is neither 0 nor 1.
    UnknownKind(u8),
    /// Decoding: `datasize` disagrees with the bytes after the header.
    SizeMismatch { declared: usize, actual: usize },
    /// Decoding: uWSGI refuses vars with an empty name.
    EmptyVarName,
    /// Decoding: a var name or value is not UTF-8.
    NotUtf8,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::VarTooLong { name, len } => {
                write!(
                    f,
                    "subscription var {name:?} is {len} bytes, at most 65535 fit"
                )
            }
            Error::PacketTooLarge { len } => write!(
                f,
                "subscription packet is {len} bytes, the server reads at most {MAX_PACKET}"
            ),
            Error::BadKey { len } => {
                write!(f, "subscription key is {len} bytes, expected 1..={MAX_KEY}")
            }
            Error::BadAddress { len } => write!(
                f,
                "subscription address is {len} bytes, expected 1..={MAX_ADDRESS}"
            ),
            Error::Modifier1OutOfRange(m) => {
                write!(f, "modifier1 {m} out of range, expected 0..=255")
            }
            Error::Truncated => f.write_str("subscription packet truncated"),
            Error::NotSubscription { modifier1 } => write!(
                f,
                "packet modifier1 is {modifier1}, expected {MODIFIER1} (subscription)"
            ),
            Error::UnknownKind(m) => write!(
                f,
                "packet modifier2 is {m}, expected 0 (subscribe) or 1 (unsubscribe)"
            ),
            Error::SizeMismatch { declared, actual } => write!(
                f,
                "packet datasize says {declared} bytes of vars, {actual} follow the header"
            ),
            Error::EmptyVarName => f.write_str("packet has a var with an empty name"),
            Error::NotUtf8 => f.write_str("packet var is not UTF-8"),
        }
    }
}

impl std::error::Error for Error {}

/// Build the packet subpkt.py sends: vars `key`, `address`, `modifier1`,
/// `modifier2` (0). Enough for the server to create a usable node; the
/// vassal's next announce fills in cores, load and weight.
pub fn encode(kind: Kind, key: &str, address: &str, modifier1: i64) -> Result<Vec<u8>, Error> {
    let modifier1 = u8::try_from(modifier1).map_err(|_| Error::Modifier1OutOfRange(modifier1))?;
    encode_announce(kind, &Announce::new(key, address, modifier1))
}

/// Build a packet with the vars in the order uWSGI writes them.
pub fn encode_announce(kind: Kind, a: &Announce) -> Result<Vec<u8>, Error> {
    // Checked here, not left to the server: it drops such packets silently
    // (or, for a 255-byte key, overruns its slot), and we would wait for a
    // node that never comes.
    if a.key.is_empty() || a.key.len() > MAX_KEY {
        return Err(Error::BadKey { len: a.key.len() });
    }
    if a.address.is_empty() || a.address.len() > MAX_ADDRESS {
        return Err(Error::BadAddress {
            len: a.address.len(),
        });
    }

    let mut vars = Vec::new();
    put_var(&mut vars, "key", a.key.as_bytes())?;
    put_var(&mut vars, "address", a.address.as_bytes())?;
    put_var(&mut vars, "modifier1", a.modifier1.to_string().as_bytes())?;
    put_var(&mut vars, "modifier2", a.modifier2.to_string().as_bytes())?;
    for (name, value) in [("cores", a.cores), ("load", a.load), ("weight", a.weight)] {
        if let Some(v) = value {
            put_var(&mut vars, name, v.to_string().as_bytes())?;
        }
    }

    let len = 4 + vars.len();
    if len > MAX_PACKET {
        return Err(Error::PacketTooLarge { len });
    }
    let mut packet = Vec::with_capacity(len);
    packet.push(MODIFIER1);
    // Cannot fail: vars.len() < MAX_PACKET < 65536.
    packet.extend_from_slice(&(vars.len() as u16).to_le_bytes());
    packet.push(kind.header_byte());
    packet.extend_from_slice(&vars);
    Ok(packet)
}

/// Append one `(u16 LE len, name, u16 LE len, value)` var.
fn put_var(buf: &mut Vec<u8>, name: &str, value: &[u8]) -> Result<(), Error> {
    let too_long = |len| Error::VarTooLong {
        name: name.to_string(),
        len,
    };
    let name_len = u16::try_from(name.len()).map_err(|_| too_long(name.len()))?;
    let value_len = u16::try_from(value.len()).map_err(|_| too_long(value.len()))?;
    buf.extend_from_slice(&name_len.to_le_bytes());
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(&value_len.to_le_bytes());
    buf.extend_from_slice(value);
    Ok(())
}

/// A decoded subscription packet. Vars are kept in wire order, duplicates
/// included, as a fake subscription server needs to see exactly what came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub kind: Kind,
    pub vars: Vec<(String, String)>,
}

impl Packet {
    /// The last value of a var, as uWSGI's parser keeps the last one.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Read a packet strictly (for tests and fake servers): the header must say
/// subscription, `datasize` must match, every var must be whole.
pub fn decode(bytes: &[u8]) -> Result<Packet, Error> {
    if bytes.len() < 4 {
        return Err(Error::Truncated);
    }
    if bytes[0] != MODIFIER1 {
        return Err(Error::NotSubscription {
            modifier1: bytes[0],
        });
    }
    let declared = u16::from_le_bytes([bytes[1], bytes[2]]) as usize;
    let kind = match bytes[3] {
        0 => Kind::Subscribe,
        1 => Kind::Unsubscribe,
        other => return Err(Error::UnknownKind(other)),
    };
    let body = &bytes[4..];
    if declared != body.len() {
        return Err(Error::SizeMismatch {
            declared,
            actual: body.len(),
        });
    }

    let mut vars = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let name = take_field(&mut rest)?;
        if name.is_empty() {
            return Err(Error::EmptyVarName);
        }
        let value = take_field(&mut rest)?;
        let name = String::from_utf8(name.to_vec()).map_err(|_| Error::NotUtf8)?;
        let value = String::from_utf8(value.to_vec()).map_err(|_| Error::NotUtf8)?;
        vars.push((name, value));
    }
    Ok(Packet { kind, vars })
}

/// Split one u16-LE-length-prefixed field off the front of `rest`.
fn take_field<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], Error> {
    if rest.len() < 2 {
        return Err(Error::Truncated);
    }
    let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
    let after = &rest[2..];
    if after.len() < len {
        return Err(Error::Truncated);
    }
    let (field, tail) = after.split_at(len);
    *rest = tail;
    Ok(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes subpkt.py produces for
    /// `send("/tmp/uwsgi-lab/sub.sock", "example.com", "/tmp/uwsgi-lab/app1.sock")`,
    /// written out by hand from its struct.pack calls.
    fn subpkt_py(unsubscribe: bool) -> Vec<u8> {
        fn kv(k: &str, v: &str) -> Vec<u8> {
            let mut out = (k.len() as u16).to_le_bytes().to_vec();
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(&(v.len() as u16).to_le_bytes());
            out.extend_from_slice(v.as_bytes());
            out
        }
        let mut body = kv("key", "example.com");
        body.extend(kv("address", "/tmp/uwsgi-lab/app1.sock"));
        body.extend(kv("modifier1", "0"));
        body.extend(kv("modifier2", "0"));
        let mut pkt = vec![224];
        pkt.extend_from_slice(&(body.len() as u16).to_le_bytes());
        pkt.push(u8::from(unsubscribe));
        pkt.extend(body);
        pkt
    }

    #[test]
    fn encode_matches_subpkt_py_byte_for_byte() {
        let sub = encode(
            Kind::Subscribe,
            "example.com",
            "/tmp/uwsgi-lab/app1.sock",
            0,
        )
        .unwrap();
        assert_eq!(sub, subpkt_py(false));
        let unsub = encode(
            Kind::Unsubscribe,
            "example.com",
            "/tmp/uwsgi-lab/app1.sock",
            0,
        )
        .unwrap();
        assert_eq!(unsub, subpkt_py(true));
    }

    /// Output of the real experiments/subpkt.py packing code (hex), for
    /// `key=example.com address=/tmp/uwsgi-lab/app1.sock`, subscribe.
    #[test]
    fn encode_matches_subpkt_py_golden_bytes() {
        const GOLDEN: &str = "e051000003006b65790b006578616d706c652e636f6d0700616464726573731800\
                              2f746d702f75777367692d6c61622f617070312e736f636b09006d6f6469666965\
                              723101003009006d6f64696669657232010030";
        let hex: String = encode(
            Kind::Subscribe,
            "example.com",
            "/tmp/uwsgi-lab/app1.sock",
            0,
        )
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
        assert_eq!(hex, GOLDEN);
    }

    #[test]
    fn header_fields() {
        let p = encode(Kind::Unsubscribe, "k", "a", 5).unwrap();
        assert_eq!(p[0], 224);
        assert_eq!(u16::from_le_bytes([p[1], p[2]]) as usize, p.len() - 4);
        assert_eq!(p[3], 1);
    }

    #[test]
    fn round_trip_simple() {
        let bytes = encode(Kind::Subscribe, "example.com", "127.0.0.1:3031", 30).unwrap();
        let p = decode(&bytes).unwrap();
        assert_eq!(p.kind, Kind::Subscribe);
        assert_eq!(
            p.vars,
            vec![
                ("key".to_string(), "example.com".to_string()),
                ("address".to_string(), "127.0.0.1:3031".to_string()),
                ("modifier1".to_string(), "30".to_string()),
                ("modifier2".to_string(), "0".to_string()),
            ]
        );
    }

    #[test]
    fn round_trip_full_announce_in_uwsgi_order() {
        let a = Announce {
            key: "example.com".into(),
            address: "/run/app_01.sock".into(),
            modifier1: 0,
            modifier2: 3,
            cores: Some(4),
            load: Some(0),
            weight: Some(2),
        };
        let p = decode(&encode_announce(Kind::Unsubscribe, &a).unwrap()).unwrap();
        assert_eq!(p.kind, Kind::Unsubscribe);
        let names: Vec<&str> = p.vars.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "key",
                "address",
                "modifier1",
                "modifier2",
                "cores",
                "load",
                "weight"
            ]
        );
        assert_eq!(p.get("modifier2"), Some("3"));
        assert_eq!(p.get("weight"), Some("2"));
        assert_eq!(p.get("sign"), None);
    }

    #[test]
    fn modifier1_must_be_a_byte() {
        assert_eq!(
            encode(Kind::Subscribe, "k", "a", 256),
            Err(Error::Modifier1OutOfRange(256))
        );
        assert_eq!(
            encode(Kind::Subscribe, "k", "a", -1),
            Err(Error::Modifier1OutOfRange(-1))
        );
        assert!(encode(Kind::Subscribe, "k", "a", 255).is_ok());
    }

    #[test]
    fn key_and_address_limits_of_the_server() {
        assert_eq!(
            encode(Kind::Subscribe, "", "a", 0),
            Err(Error::BadKey { len: 0 })
        );
        assert_eq!(
            encode(Kind::Subscribe, "k", "", 0),
            Err(Error::BadAddress { len: 0 })
        );
        let long = "x".repeat(256);
        assert_eq!(
            encode(Kind::Subscribe, "k", &long, 0),
            Err(Error::BadAddress { len: 256 })
        );
        assert!(encode(Kind::Subscribe, "k", &long[..255], 0).is_ok());
        assert_eq!(
            encode(Kind::Subscribe, &long[..255], "a", 0),
            Err(Error::BadKey { len: 255 })
        );
        assert!(encode(Kind::Subscribe, &long[..254], "a", 0).is_ok());
    }

    #[test]
    fn var_longer_than_u16_is_refused() {
        let mut buf = Vec::new();
        let big = vec![b'x'; 65536];
        assert_eq!(
            put_var(&mut buf, "key", &big),
            Err(Error::VarTooLong {
                name: "key".into(),
                len: 65536
            })
        );
        assert!(buf.is_empty(), "nothing half-written");
        put_var(&mut buf, "key", &big[..65535]).unwrap();
        assert_eq!(buf.len(), 2 + 3 + 2 + 65535);
    }

    #[test]
    fn decode_rejects_malformed_packets() {
        let good = encode(Kind::Subscribe, "k", "a", 0).unwrap();

        assert_eq!(decode(&good[..3]), Err(Error::Truncated));

        let mut m = good.clone();
        m[0] = 0;
        assert_eq!(decode(&m), Err(Error::NotSubscription { modifier1: 0 }));

        let mut m = good.clone();
        m[3] = 7;
        assert_eq!(decode(&m), Err(Error::UnknownKind(7)));

        let declared = good.len() - 4;
        assert_eq!(
            decode(&good[..good.len() - 1]),
            Err(Error::SizeMismatch {
                declared,
                actual: declared - 1
            })
        );

        // datasize consistent, but the last var is cut short.
        let mut m = good[..good.len() - 1].to_vec();
        let size = (m.len() - 4) as u16;
        m[1..3].copy_from_slice(&size.to_le_bytes());
        assert_eq!(decode(&m), Err(Error::Truncated));

        // An empty var name, which uwsgi_hooked_parse refuses.
        let m = [224, 4, 0, 0, 0, 0, 0, 0];
        assert_eq!(decode(&m), Err(Error::EmptyVarName));

        let m = [224, 6, 0, 0, 1, 0, 0xff, 1, 0, b'x'];
        assert_eq!(decode(&m), Err(Error::NotUtf8));
    }

    #[test]
    fn decode_empty_body_and_last_duplicate_wins() {
        assert_eq!(
            decode(&[224, 0, 0, 0]).unwrap(),
            Packet {
                kind: Kind::Subscribe,
                vars: vec![]
            }
        );
        let mut body = Vec::new();
        put_var(&mut body, "key", b"a").unwrap();
        put_var(&mut body, "key", b"b").unwrap();
        let mut pkt = vec![224];
        pkt.extend_from_slice(&(body.len() as u16).to_le_bytes());
        pkt.push(0);
        pkt.extend(body);
        let p = decode(&pkt).unwrap();
        assert_eq!(p.vars.len(), 2);
        assert_eq!(p.get("key"), Some("b"));
    }
}
