//! Engine.IO v4 / Socket.IO v5 text packet codec (no binary attachments).
//!
//! Engine.IO frame (one WebSocket text message): `<type><data>` with type
//! `0` open, `1` close, `2` ping, `3` pong, `4` message, `5` upgrade, `6` noop.
//!
//! Socket.IO packet (the data of an Engine.IO `4` message):
//! `<type>[<attachments>-][<nsp>,][<ack id>][<json>]` with type `0` CONNECT, `1` DISCONNECT,
//! `2` EVENT, `3` ACK, `4` CONNECT_ERROR, `5` BINARY_EVENT, `6` BINARY_ACK.
//! The namespace is omitted for `/`; when present it runs up to the first `,` (or the end).

use std::borrow::Cow;
use std::fmt;

use serde_json::Value;

/// Why a frame could not be decoded. Never a panic: every malformed input ends here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

fn err<T>(msg: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError(msg.into()))
}

/// One Engine.IO packet, borrowing the frame text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EioPacket<'a> {
    /// `0{"sid":..,"upgrades":[..],"pingInterval":..,"pingTimeout":..,"maxPayload":..}`
    Open(&'a str),
    Close,
    Ping(&'a str),
    Pong(&'a str),
    /// `4<socket.io packet>`
    Message(&'a str),
    Upgrade,
    Noop,
}

pub fn decode_eio(frame: &str) -> Result<EioPacket<'_>, DecodeError> {
    let Some(first) = frame.as_bytes().first() else {
        return err("empty Engine.IO frame");
    };
    if !first.is_ascii() {
        return err(format!(
            "unknown Engine.IO packet type in {:?}",
            preview(frame)
        ));
    }
    let rest = &frame[1..]; // safe: the first byte is ASCII, so 1 is a char boundary
    Ok(match first {
        b'0' => EioPacket::Open(rest),
        b'1' => EioPacket::Close,
        b'2' => EioPacket::Ping(rest),
        b'3' => EioPacket::Pong(rest),
        b'4' => EioPacket::Message(rest),
        b'5' => EioPacket::Upgrade,
        b'6' => EioPacket::Noop,
        _ => {
            return err(format!(
                "unknown Engine.IO packet type in {:?}",
                preview(frame)
            ));
        }
    })
}

/// The Engine.IO OPEN packet payload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EngineOpen {
    pub sid: String,
    pub upgrades: Vec<String>,
    pub ping_interval_ms: u64,
    pub ping_timeout_ms: u64,
    pub max_payload: u64,
}

/// Parses the JSON of an OPEN packet (what follows the leading `0`).
pub fn decode_open(json: &str) -> Result<EngineOpen, DecodeError> {
    let v: Value = serde_json::from_str(json).map_err(|e| {
        DecodeError(format!(
            "OPEN packet is not JSON ({e}): {:?}",
            preview(json)
        ))
    })?;
    let Some(sid) = v.get("sid").and_then(Value::as_str) else {
        return err(format!("OPEN packet without sid: {:?}", preview(json)));
    };
    let num = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    Ok(EngineOpen {
        sid: sid.to_owned(),
        upgrades: v
            .get("upgrades")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|u| u.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        ping_interval_ms: num("pingInterval"),
        ping_timeout_ms: num("pingTimeout"),
        max_payload: num("maxPayload"),
    })
}

/// One Socket.IO packet. `ns` borrows the frame; `/` when the frame had no namespace.
#[derive(Debug, Clone, PartialEq)]
pub enum Packet<'a> {
    /// `0[/ns,][{..}]`: from a client the payload is the auth object; from the server `{"sid":..}`.
    Connect { ns: &'a str, data: Option<Value> },
    /// `1[/ns,]`
    Disconnect { ns: &'a str },
    /// `2[/ns,][id]["name",args..]`
    Event {
        ns: &'a str,
        id: Option<u64>,
        name: Cow<'a, str>,
        args: Vec<Value>,
    },
    /// `3[/ns,]id[args..]`
    Ack {
        ns: &'a str,
        id: u64,
        args: Vec<Value>,
    },
    /// `4[/ns,]{"message":..,"data":..}` (v5 payload is an object; older servers send a string)
    ConnectError { ns: &'a str, data: Value },
}

impl Packet<'_> {
    pub fn ns(&self) -> &str {
        match self {
            Packet::Connect { ns, .. }
            | Packet::Disconnect { ns }
            | Packet::Event { ns, .. }
            | Packet::Ack { ns, .. }
            | Packet::ConnectError { ns, .. } => ns,
        }
    }
}

/// Decodes a Socket.IO packet (the data of an Engine.IO `4` message, without the `4`).
pub fn decode(s: &str) -> Result<Packet<'_>, DecodeError> {
    let Some(&ty) = s.as_bytes().first() else {
        return err("empty Socket.IO packet");
    };
    match ty {
        b'0'..=b'4' => {}
        b'5' | b'6' => return err("binary Socket.IO packets (5/6) are not supported"),
        _ => return err(format!("unknown Socket.IO packet type in {:?}", preview(s))),
    }
    let mut rest = &s[1..]; // the first byte is an ASCII digit: 1 is a char boundary
    // namespace: from '/' up to the first ',' (consumed) or the end
    let ns = if rest.starts_with('/') {
        match rest.find(',') {
            Some(i) => {
                let ns = &rest[..i];
                rest = &rest[i + 1..];
                ns
            }
            None => {
                let ns = rest;
                rest = "";
                ns
            }
        }
    } else {
        "/"
    };
    // ack id: leading ASCII digits
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let id = if digits > 0 {
        let id: u64 = rest[..digits]
            .parse()
            .map_err(|_| DecodeError(format!("ack id out of range in {:?}", preview(s))))?;
        rest = &rest[digits..];
        Some(id)
    } else {
        None
    };
    let payload =
        if rest.is_empty() {
            None
        } else {
            Some(serde_json::from_str::<Value>(rest).map_err(|e| {
                DecodeError(format!("invalid JSON payload ({e}) in {:?}", preview(s)))
            })?)
        };
    match ty {
        b'0' => {
            if id.is_some() {
                return err(format!("CONNECT with an ack id: {:?}", preview(s)));
            }
            match payload {
                None | Some(Value::Object(_)) => Ok(Packet::Connect { ns, data: payload }),
                Some(_) => err(format!(
                    "CONNECT payload must be an object: {:?}",
                    preview(s)
                )),
            }
        }
        b'1' => match (id, payload) {
            (None, None) => Ok(Packet::Disconnect { ns }),
            _ => err(format!("DISCONNECT takes no payload: {:?}", preview(s))),
        },
        b'2' => match payload {
            Some(Value::Array(mut arr)) if !arr.is_empty() => {
                let name = match arr.remove(0) {
                    Value::String(n) => n,
                    Value::Number(n) => n.to_string(),
                    _ => return err(format!("EVENT without a name: {:?}", preview(s))),
                };
                Ok(Packet::Event {
                    ns,
                    id,
                    name: Cow::Owned(name),
                    args: arr,
                })
            }
            _ => err(format!(
                "EVENT payload must be a non-empty array: {:?}",
                preview(s)
            )),
        },
        b'3' => match (id, payload) {
            (Some(id), Some(Value::Array(args))) => Ok(Packet::Ack { ns, id, args }),
            (None, _) => err(format!("ACK without an id: {:?}", preview(s))),
            _ => err(format!("ACK payload must be an array: {:?}", preview(s))),
        },
        b'4' => match (id, payload) {
            (None, Some(data @ (Value::Object(_) | Value::String(_)))) => {
                Ok(Packet::ConnectError { ns, data })
            }
            _ => err(format!(
                "CONNECT_ERROR payload must be an object: {:?}",
                preview(s)
            )),
        },
        _ => unreachable!(),
    }
}

fn push_ns(out: &mut String, ns: &str) {
    if !ns.is_empty() && ns != "/" {
        out.push_str(ns);
        out.push(',');
    }
}

fn push_json(out: &mut String, v: &impl serde::Serialize) {
    // serde_json only fails on maps with non-string keys, which `Value` cannot hold.
    out.push_str(&serde_json::to_string(v).expect("serialize JSON"));
}

fn push_id(out: &mut String, id: Option<u64>) {
    if let Some(id) = id {
        use std::fmt::Write;
        let _ = write!(out, "{id}");
    }
}

fn push_array(out: &mut String, name: Option<&str>, args: &[Value]) {
    out.push('[');
    let mut first = true;
    if let Some(name) = name {
        push_json(out, &name);
        first = false;
    }
    for a in args {
        if !first {
            out.push(',');
        }
        first = false;
        push_json(out, a);
    }
    out.push(']');
}

/// Appends the encoding of `p` to `out` (callers prepend the Engine.IO `4`).
pub fn encode_into(out: &mut String, p: &Packet<'_>) {
    match p {
        Packet::Connect { ns, data } => {
            out.push('0');
            push_ns(out, ns);
            if let Some(d) = data {
                push_json(out, d);
            }
        }
        Packet::Disconnect { ns } => {
            out.push('1');
            push_ns(out, ns);
        }
        Packet::Event { ns, id, name, args } => {
            out.push('2');
            push_ns(out, ns);
            push_id(out, *id);
            push_array(out, Some(name), args);
        }
        Packet::Ack { ns, id, args } => {
            out.push('3');
            push_ns(out, ns);
            push_id(out, Some(*id));
            push_array(out, None, args);
        }
        Packet::ConnectError { ns, data } => {
            out.push('4');
            push_ns(out, ns);
            push_json(out, data);
        }
    }
}

/// The Socket.IO encoding of `p` (without the Engine.IO `4`).
pub fn encode(p: &Packet<'_>) -> String {
    let mut s = String::new();
    encode_into(&mut s, p);
    s
}

/// The Engine.IO frame (`4` + Socket.IO packet) for `p`, ready to send as a WebSocket text message.
pub fn encode_frame(p: &Packet<'_>) -> String {
    let mut s = String::with_capacity(64);
    s.push('4');
    encode_into(&mut s, p);
    s
}

/// Event frame `42/ns,[id]["name",arg]` for a single argument, without building a `Packet`.
pub fn encode_event_frame(ns: &str, id: Option<u64>, name: &str, arg: &Value) -> String {
    let mut s = String::with_capacity(64);
    s.push_str("42");
    push_ns(&mut s, ns);
    push_id(&mut s, id);
    push_array(&mut s, Some(name), std::slice::from_ref(arg));
    s
}

pub(crate) fn preview(s: &str) -> &str {
    if s.len() <= 200 {
        return s;
    }
    let mut end = 200;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev<'a>(ns: &'a str, id: Option<u64>, name: &'a str, args: Vec<Value>) -> Packet<'a> {
        Packet::Event {
            ns,
            id,
            name: Cow::Borrowed(name),
            args,
        }
    }

    #[test]
    fn eio_types() {
        assert_eq!(decode_eio("2").unwrap(), EioPacket::Ping(""));
        assert_eq!(decode_eio("2probe").unwrap(), EioPacket::Ping("probe"));
        assert_eq!(decode_eio("3").unwrap(), EioPacket::Pong(""));
        assert_eq!(decode_eio("1").unwrap(), EioPacket::Close);
        assert_eq!(decode_eio("6").unwrap(), EioPacket::Noop);
        assert_eq!(decode_eio("5").unwrap(), EioPacket::Upgrade);
        assert_eq!(decode_eio("40/im,").unwrap(), EioPacket::Message("0/im,"));
        assert_eq!(
            decode_eio(r#"0{"sid":"x"}"#).unwrap(),
            EioPacket::Open(r#"{"sid":"x"}"#)
        );
        assert!(decode_eio("").is_err());
        assert!(decode_eio("9").is_err());
        assert!(decode_eio("é").is_err());
    }

    #[test]
    fn open_packet() {
        let o = decode_open(
            r#"{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#,
        )
        .unwrap();
        assert_eq!(o.sid, "lv_VI97HAXpY6yYWAAAC");
        assert_eq!(o.ping_interval_ms, 25000);
        assert_eq!(o.ping_timeout_ms, 20000);
        assert_eq!(o.max_payload, 1_000_000);
        assert!(o.upgrades.is_empty());
        assert!(decode_open("{").is_err());
        assert!(decode_open(r#"{"pingInterval":1}"#).is_err());
    }

    #[test]
    fn connect_shapes() {
        assert_eq!(
            decode("0/im,").unwrap(),
            Packet::Connect {
                ns: "/im",
                data: None
            }
        );
        assert_eq!(
            decode("0/im").unwrap(),
            Packet::Connect {
                ns: "/im",
                data: None
            }
        );
        assert_eq!(
            decode("0").unwrap(),
            Packet::Connect {
                ns: "/",
                data: None
            }
        );
        assert_eq!(
            decode(r#"0/im,{"sid":"abc"}"#).unwrap(),
            Packet::Connect {
                ns: "/im",
                data: Some(json!({"sid":"abc"}))
            }
        );
        assert_eq!(
            decode(r#"0{"sid":"r"}"#).unwrap(),
            Packet::Connect {
                ns: "/",
                data: Some(json!({"sid":"r"}))
            }
        );
        // encoder
        assert_eq!(
            encode(&Packet::Connect {
                ns: "/im",
                data: None
            }),
            "0/im,"
        );
        assert_eq!(
            encode(&Packet::Connect {
                ns: "/",
                data: None
            }),
            "0"
        );
        assert_eq!(
            encode_frame(&Packet::Connect {
                ns: "/im",
                data: Some(json!({"token":"a.b.c"}))
            }),
            r#"40/im,{"token":"a.b.c"}"#
        );
        assert_eq!(
            encode(&Packet::Connect {
                ns: "/",
                data: Some(json!({"token":"t"}))
            }),
            r#"0{"token":"t"}"#
        );
        assert!(decode("0/im,[1]").is_err());
        assert!(decode("0/im,\"x\"").is_err());
    }

    #[test]
    fn connect_error_shapes() {
        assert_eq!(
            decode(r#"4/im,{"message":"TOKEN_MISSING"}"#).unwrap(),
            Packet::ConnectError {
                ns: "/im",
                data: json!({"message":"TOKEN_MISSING"})
            }
        );
        assert_eq!(
            decode(r#"4{"message":"x","data":{"code":"A"}}"#).unwrap(),
            Packet::ConnectError {
                ns: "/",
                data: json!({"message":"x","data":{"code":"A"}})
            }
        );
        assert_eq!(
            decode(r#"4/im,"Invalid namespace""#).unwrap(),
            Packet::ConnectError {
                ns: "/im",
                data: json!("Invalid namespace")
            }
        );
        let p = Packet::ConnectError {
            ns: "/im",
            data: json!({"message":"M"}),
        };
        assert_eq!(decode(&encode(&p)).unwrap(), p);
        assert!(decode("4/im,").is_err());
        assert!(decode("4/im,[1]").is_err());
    }

    #[test]
    fn disconnect_shapes() {
        assert_eq!(decode("1/im,").unwrap(), Packet::Disconnect { ns: "/im" });
        assert_eq!(decode("1/im").unwrap(), Packet::Disconnect { ns: "/im" });
        assert_eq!(decode("1").unwrap(), Packet::Disconnect { ns: "/" });
        assert_eq!(encode_frame(&Packet::Disconnect { ns: "/im" }), "41/im,");
        assert_eq!(encode_frame(&Packet::Disconnect { ns: "/" }), "41");
        assert!(decode("1/im,{}").is_err());
        assert!(decode("1/im,5").is_err());
    }

    #[test]
    fn event_shapes() {
        assert_eq!(
            decode(r#"2/im,["connected",{"userId":1}]"#).unwrap(),
            ev("/im", None, "connected", vec![json!({"userId":1})])
        );
        assert_eq!(
            decode(r#"2/im,12["ping"]"#).unwrap(),
            ev("/im", Some(12), "ping", vec![])
        );
        assert_eq!(
            decode(r#"2["a",1,"two",null]"#).unwrap(),
            ev("/", None, "a", vec![json!(1), json!("two"), Value::Null])
        );
        assert_eq!(decode(r#"27["x"]"#).unwrap(), ev("/", Some(7), "x", vec![]));
        // namespace containing no comma runs to the end: then no payload -> error for EVENT
        assert!(decode("2/im").is_err());
        // encoder round trips
        for p in [
            ev(
                "/im",
                None,
                "send_message",
                vec![json!({"to":2,"content":"hi, \"you\" ☃"})],
            ),
            ev("/im", Some(0), "a", vec![]),
            ev(
                "/im",
                Some(18446744073709551615),
                "big",
                vec![json!([1, 2]), json!("s")],
            ),
            ev("/", Some(3), "root", vec![json!(true)]),
        ] {
            let s = encode(&p);
            assert_eq!(decode(&s).unwrap(), p, "{s}");
        }
        assert_eq!(
            encode_frame(&ev("/im", Some(12), "send_message", vec![json!({"to":2})])),
            r#"42/im,12["send_message",{"to":2}]"#
        );
        assert_eq!(
            encode_event_frame("/im", None, "e", &json!({"a":1})),
            r#"42/im,["e",{"a":1}]"#
        );
        assert_eq!(
            encode_event_frame("/", Some(4), "e", &Value::Null),
            r#"424["e",null]"#
        );
    }

    #[test]
    fn ack_shapes() {
        assert_eq!(
            decode(r#"3/im,12[{"ok":true,"id":5}]"#).unwrap(),
            Packet::Ack {
                ns: "/im",
                id: 12,
                args: vec![json!({"ok":true,"id":5})]
            }
        );
        assert_eq!(
            decode("30[]").unwrap(),
            Packet::Ack {
                ns: "/",
                id: 0,
                args: vec![]
            }
        );
        let p = Packet::Ack {
            ns: "/im",
            id: 99,
            args: vec![json!(1), json!({"x":"y"})],
        };
        assert_eq!(encode(&p), r#"3/im,99[1,{"x":"y"}]"#);
        assert_eq!(decode(&encode(&p)).unwrap(), p);
        assert!(decode(r#"3/im,[1]"#).is_err(), "ack without id");
        assert!(
            decode(r#"3/im,5{"a":1}"#).is_err(),
            "ack payload not an array"
        );
        assert!(decode(r#"3/im,5"#).is_err(), "ack without payload");
    }

    #[test]
    fn malformed_is_error_not_panic() {
        let bad = [
            "",
            "7",
            "x",
            "é",
            "2/im,not json",
            "2/im,",
            "2/im,[]",
            "2/im,[1.5e999999]",
            "2/im,{}",
            "2/im,[{}]",
            "2/im,99999999999999999999999[\"a\"]",
            "2/im,12",
            "2/im,12[",
            "51-/im,[\"a\",{\"_placeholder\":true,\"num\":0}]",
            "6/im,1[]",
            "0/im,{\"a\":",
            "3",
            "4",
            "2[\"a\"]garbage",
            "/im,",
        ];
        for b in bad {
            assert!(decode(b).is_err(), "{b:?} should not decode");
        }
        // long garbage: error message is bounded
        let long = format!("2/im,{}", "x".repeat(10_000));
        let e = decode(&long).unwrap_err();
        assert!(e.0.len() < 600, "{}", e.0.len());
        // multi-byte char right at the preview cut
        let long = format!("2/im,{}", "é".repeat(500));
        assert!(decode(&long).is_err());
        // numeric event names are tolerated (socket.io allows them)
        assert_eq!(
            decode("2[1,2]").unwrap(),
            ev("/", None, "1", vec![json!(2)])
        );
    }
}
