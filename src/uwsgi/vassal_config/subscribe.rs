//! The options that say where a vassal announces itself (`subscribe2`,
//! `subscribe-to`) and the C-like number and boolean readings uWSGI applies
//! to option values.

use super::*;

/// `generate_socket_name`: leading whitespace is dropped, the rest kept.
pub(super) fn socket_name(v: &str) -> String {
    v.trim_start().to_string()
}

/// `uwsgi_opt_true`: anything but false/off/no (any case) or "0" is true,
/// including the empty value of a bare key.
pub(super) fn opt_true(v: &str) -> bool {
    !(v.eq_ignore_ascii_case("false")
        || v.eq_ignore_ascii_case("off")
        || v.eq_ignore_ascii_case("no")
        || v == "0")
}

/// C `atoi` then a cast to `uint8_t`, as uWSGI stores modifiers.
pub(super) fn atoi_u8(v: &str) -> u8 {
    let v = v.trim_start();
    let (neg, digits) = match v.as_bytes().first() {
        Some(b'-') => (true, &v[1..]),
        Some(b'+') => (false, &v[1..]),
        _ => (false, v),
    };
    let n = digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0u64, |n, d| {
            n.wrapping_mul(10).wrapping_add(u64::from(d - b'0'))
        });
    let n = if neg { n.wrapping_neg() } else { n };
    n as u8
}

/// `uwsgi_kvlist_parse(arg, ',', '=')`: items split on unescaped `,`
/// (backslash escapes), key up to the first `=`, no trimming; a repeated key
/// keeps the last value; items without `=` are ignored.
pub(super) fn kvlist(arg: &str) -> Vec<(String, String)> {
    let mut items = vec![String::new()];
    let mut escaped = false;
    for c in arg.chars() {
        if escaped {
            items.last_mut().unwrap().push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            items.push(String::new());
        } else {
            items.last_mut().unwrap().push(c);
        }
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for item in items {
        if let Some((k, v)) = item.split_once('=') {
            match out.iter_mut().find(|(ok, _)| ok == k) {
                Some(slot) => slot.1 = v.to_string(),
                None => out.push((k.to_string(), v.to_string())),
            }
        }
    }
    out
}

/// `uwsgi_subscribe2`.
pub(super) fn parse_subscribe2(arg: &str, sockets: &[String]) -> Result<SubscribeTarget, String> {
    let kv = kvlist(arg);
    let get = |name: &str| kv.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let server = get("server").ok_or("no server=")?;
    let key = get("key").ok_or("no key=")?;
    let mut addr = get("addr");
    // socket=N (0-based) wins over addr= when that socket exists.
    if let Some(n) = get("socket") {
        if let Some(s) = usize::try_from(atoi_i64(&n))
            .ok()
            .and_then(|n| sockets.get(n))
        {
            addr = Some(s.clone());
        }
    }
    Ok(SubscribeTarget {
        server,
        key,
        addr,
        modifier1: get("modifier1").map_or(0, |m| atoi_u8(&m)),
        modifier2: get("modifier2").map_or(0, |m| atoi_u8(&m)),
        check: get("check"),
    })
}

/// `uwsgi_subscribe`: `[addr=|=N=]server:key[,modifier1[,sign]]`.
pub(super) fn parse_subscribe_to(
    arg: &str,
    shared_sockets: &[String],
) -> Result<SubscribeTarget, String> {
    let (addr, rest) = match arg.find('=') {
        Some(0) => {
            // =N=server:key, N a shared socket.
            let (n, rest) = arg[1..].split_once('=').ok_or("expected =N=server:key")?;
            let s = usize::try_from(atoi_i64(n))
                .ok()
                .and_then(|n| shared_sockets.get(n))
                .ok_or_else(|| format!("no shared-socket number {n}"))?;
            (Some(s.clone()), rest)
        }
        Some(i) => (Some(arg[..i].to_string()), &arg[i + 1..]),
        None => (None, arg),
    };
    // A unix server path starts with '/'; anything else needs host:port
    // before the key's colon.
    let key_colon = if let Some(path) = rest.strip_prefix('/') {
        path.find(':').map(|i| i + 1)
    } else {
        let port = rest
            .find(':')
            .ok_or("expected /unix/path:key or host:port:key")?;
        rest[port + 1..].find(':').map(|i| i + port + 1)
    }
    .ok_or("no :key after the server")?;
    let server = rest[..key_colon].to_string();
    let spec = &rest[key_colon + 1..];
    if let Some(file) = spec.strip_prefix('@') {
        return Err(format!("keys are read from {file}, not followed"));
    }
    let (key, modifier1) = match spec.split_once(',') {
        Some((k, m)) => (k, m.split(',').next().unwrap_or("")),
        None => (spec, ""),
    };
    Ok(SubscribeTarget {
        server,
        key: key.to_string(),
        addr,
        modifier1: atoi_u8(modifier1),
        modifier2: 0,
        check: None,
    })
}

pub(super) fn atoi_i64(v: &str) -> i64 {
    let v = v.trim_start();
    let (sign, digits) = match v.as_bytes().first() {
        Some(b'-') => (-1, &v[1..]),
        Some(b'+') => (1, &v[1..]),
        _ => (1, v),
    };
    sign * digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0i64, |n, d| {
            n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
        })
}
