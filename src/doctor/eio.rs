//! The handful of Engine.IO v4 / Socket.IO v5 packets the doctor reads and writes: the open
//! packet, the polling payload separator, and namespace CONNECT / CONNECT_ERROR / EVENT.

use serde_json::Value;

/// The Engine.IO open packet (`0{...}`).
#[derive(Clone, Debug)]
pub struct Open {
    pub sid: String,
    pub upgrades: Vec<String>,
    pub ping_interval_ms: u64,
    pub ping_timeout_ms: u64,
    pub max_payload: u64,
}

impl Open {
    pub fn parse(packet: &str) -> Result<Open, String> {
        let json = packet.strip_prefix('0').ok_or_else(|| {
            format!(
                "expected an Engine.IO open packet (0{{…}}), got {}",
                preview(packet)
            )
        })?;
        let v: Value = serde_json::from_str(json)
            .map_err(|_| format!("the open packet is not JSON: {}", preview(packet)))?;
        let sid = v["sid"]
            .as_str()
            .ok_or("the open packet has no sid")?
            .to_string();
        Ok(Open {
            sid,
            upgrades: v["upgrades"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|u| u.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            ping_interval_ms: v["pingInterval"].as_u64().unwrap_or(0),
            ping_timeout_ms: v["pingTimeout"].as_u64().unwrap_or(0),
            max_payload: v["maxPayload"].as_u64().unwrap_or(0),
        })
    }

    /// What a user compares with the server's settings (the sid is not worth showing).
    pub fn describe(&self) -> String {
        format!(
            "pingInterval {} ms, pingTimeout {} ms, maxPayload {}, upgrades [{}]",
            self.ping_interval_ms,
            self.ping_timeout_ms,
            self.max_payload,
            self.upgrades.join(", ")
        )
    }
}

/// Packets of one polling response (v4 separates them with the record separator).
pub fn polling_packets(body: &str) -> Vec<&str> {
    body.split('\u{1e}').filter(|p| !p.is_empty()).collect()
}

/// A Socket.IO packet on some namespace (inside an Engine.IO message `4…`).
#[derive(Clone, Debug, PartialEq)]
pub enum Sio {
    Connect {
        ns: String,
        data: Value,
    },
    Disconnect {
        ns: String,
    },
    Event {
        ns: String,
        name: String,
        args: Vec<Value>,
    },
    ConnectError {
        ns: String,
        data: Value,
    },
    Other,
}

impl Sio {
    /// Parse an Engine.IO message's payload (the text after the leading `4`).
    pub fn parse(msg: &str) -> Sio {
        let mut chars = msg.chars();
        let Some(kind) = chars.next() else {
            return Sio::Other;
        };
        let rest = chars.as_str();
        let (ns, rest) = match rest.strip_prefix('/') {
            Some(r) => match r.split_once(',') {
                Some((ns, tail)) => (format!("/{ns}"), tail),
                None => (format!("/{r}"), ""),
            },
            None => ("/".to_string(), rest),
        };
        let body = rest.trim_start_matches(|c: char| c.is_ascii_digit());
        let data: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        match kind {
            '0' => Sio::Connect { ns, data },
            '1' => Sio::Disconnect { ns },
            '2' => match data {
                Value::Array(mut items) if !items.is_empty() => {
                    let name = items.remove(0).as_str().unwrap_or_default().to_string();
                    Sio::Event {
                        ns,
                        name,
                        args: items,
                    }
                }
                _ => Sio::Other,
            },
            '4' => Sio::ConnectError { ns, data },
            _ => Sio::Other,
        }
    }
}

/// The namespace CONNECT as an Engine.IO message: `40/im,{"token":"…"}`.
pub fn connect(ns: &str, auth: &Value) -> String {
    if ns == "/" {
        format!("40{auth}")
    } else {
        format!("40{ns},{auth}")
    }
}

pub fn disconnect(ns: &str) -> String {
    if ns == "/" {
        "41".into()
    } else {
        format!("41{ns},")
    }
}

/// At most 120 characters of what arrived, for a report.
pub fn preview(s: &str) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let t = one_line.trim();
    if t.chars().count() > 120 {
        format!("{:?}…", t.chars().take(120).collect::<String>())
    } else {
        format!("{t:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn packets_parse_as_the_server_sends_them() {
        let o = Open::parse(r#"0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#).unwrap();
        assert_eq!((o.sid.as_str(), o.ping_interval_ms), ("abc", 25000));
        assert!(Open::parse("<html>").unwrap_err().contains("open packet"));
        assert_eq!(polling_packets("0{}\u{1e}40"), vec!["0{}", "40"]);
        assert_eq!(
            Sio::parse(r#"0/im,{"sid":"x"}"#),
            Sio::Connect {
                ns: "/im".into(),
                data: json!({"sid": "x"})
            }
        );
        assert_eq!(
            Sio::parse(r#"2/im,["error",{"code":"TOKEN_EXPIRED"}]"#),
            Sio::Event {
                ns: "/im".into(),
                name: "error".into(),
                args: vec![json!({"code": "TOKEN_EXPIRED"})]
            }
        );
        assert_eq!(
            Sio::parse(r#"4/chat,{"message":"Invalid namespace"}"#),
            Sio::ConnectError {
                ns: "/chat".into(),
                data: json!({"message": "Invalid namespace"})
            }
        );
        assert_eq!(Sio::parse("1/im,"), Sio::Disconnect { ns: "/im".into() });
        assert_eq!(
            connect("/im", &json!({"token": "t"})),
            r#"40/im,{"token":"t"}"#
        );
        assert_eq!(connect("/", &json!({})), "40{}");
    }
}
