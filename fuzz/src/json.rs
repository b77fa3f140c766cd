//! Structured JSON-RPC bodies for `step_up_differential`: messages whose members are biased
//! toward what the guard and rmcp read (`method`, `params.name`, …), rendered with the
//! spellings JSON allows and parsers may disagree on: `\uXXXX` and short escapes, surrogate
//! pairs, odd whitespace, duplicate and reordered keys, batches, deep nesting, a byte-order
//! mark.

use arbitrary::Arbitrary;

/// Strings the guard and rmcp care about; the fuzzer picks them by index, then spells them.
pub const KNOWN: &[&str] = &[
    "jsonrpc",
    "2.0",
    "id",
    "method",
    "params",
    "name",
    "arguments",
    "_meta",
    "tools/call",
    "tools/list",
    "resources/read",
    "prompts/get",
    "initialize",
    "uri",
    "result",
    "error",
    "subscriptions/listen",
    "notifications",
    "resourceSubscriptions",
    "resources/subscribe",
];

/// A string: a known one (or a scoped tool name, `scoped[i]`) or any.
#[derive(Arbitrary, Debug, Clone)]
pub enum Text {
    Known(u8),
    Scoped(u8),
    Any(String),
}

/// Any JSON value.
#[derive(Arbitrary, Debug, Clone)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Text),
    Array(Vec<Json>),
    Object(Vec<(Text, Json)>),
}

/// A member of a message object; the named ones carry the key for you.
#[derive(Arbitrary, Debug, Clone)]
pub enum Member {
    JsonRpc(Text),
    Id(Json),
    Method(Text),
    /// `params` as an object of its own members.
    Params(Vec<ParamMember>),
    /// `params` as any value.
    ParamsValue(Json),
    Other(Text, Json),
}

/// A member of `params`.
#[derive(Arbitrary, Debug, Clone)]
pub enum ParamMember {
    Name(Text),
    Uri(Text),
    Arguments(Json),
    Meta(Json),
    /// The `_meta` a 2026-07-28 request must carry (`io.modelcontextprotocol/protocolVersion`
    /// and `…/clientCapabilities`), so requests with that revision's headers reach a handler.
    Meta2026,
    /// `notifications`, the filter of a 2026-07-28 `subscriptions/listen`, as an object.
    Notifications(Vec<FilterMember>),
    Other(Text, Json),
}

/// A member of `params.notifications`.
#[derive(Arbitrary, Debug, Clone)]
pub enum FilterMember {
    /// `resourceSubscriptions`: the URIs to follow.
    ResourceSubscriptions(Vec<Text>),
    Other(Text, Json),
}

/// The shape of a body.
#[derive(Arbitrary, Debug, Clone)]
pub enum Body {
    /// A well-formed request (`jsonrpc`, `id`, `method`, `params.name`) plus extra members, in
    /// an order the fuzzer picks: rmcp accepts these, so the spelling decides the outcome.
    Request {
        id: i64,
        method: Text,
        name: Text,
        /// `params.uri` (as `resources/read` takes) instead of `params.name`.
        by_uri: bool,
        extra: Vec<Member>,
        params_extra: Vec<ParamMember>,
        order: u8,
    },
    One(Vec<Member>),
    Batch(Vec<Vec<Member>>),
    /// A message inside `depth` levels of arrays (nesting limits).
    Nested(u8, Vec<Member>),
}

/// How to spell what is rendered: a cycle of bytes, each choosing one spelling decision.
#[derive(Arbitrary, Debug, Clone)]
pub struct Style {
    pub bom: bool,
    pub choices: Vec<u8>,
}

struct Writer<'a> {
    out: Vec<u8>,
    scoped: &'a [&'a str],
    choices: &'a [u8],
    next: usize,
}

impl Writer<'_> {
    fn choice(&mut self) -> u8 {
        if self.choices.is_empty() {
            return 0;
        }
        let c = self.choices[self.next % self.choices.len()];
        self.next += 1;
        c
    }

    /// JSON whitespace (RFC 8259 §2: space, tab, line feed, carriage return), or none.
    fn ws(&mut self) {
        let c = self.choice();
        let ws: &[u8] = match c % 8 {
            4 => b" ",
            5 => b"\t",
            6 => b"\r\n",
            7 => b"\n  ",
            _ => b"",
        };
        self.out.extend_from_slice(ws);
    }

    fn text(&mut self, t: &Text) {
        let s = match t {
            Text::Known(i) => KNOWN[*i as usize % KNOWN.len()].to_owned(),
            Text::Scoped(i) if !self.scoped.is_empty() => {
                self.scoped[*i as usize % self.scoped.len()].to_owned()
            }
            Text::Scoped(_) => String::new(),
            Text::Any(s) => s.clone(),
        };
        self.string(&s);
    }

    fn string(&mut self, s: &str) {
        self.out.push(b'"');
        for ch in s.chars() {
            let c = self.choice();
            let short = match ch {
                '"' => Some("\\\""),
                '\\' => Some("\\\\"),
                '/' => Some("\\/"),
                '\u{8}' => Some("\\b"),
                '\u{c}' => Some("\\f"),
                '\n' => Some("\\n"),
                '\r' => Some("\\r"),
                '\t' => Some("\\t"),
                _ => None,
            };
            let must_escape = matches!(ch, '"' | '\\') || (ch as u32) < 0x20;
            match c % 4 {
                // `\uXXXX`, lower or upper case hex, surrogate pairs beyond the BMP.
                1 | 2 => {
                    let mut units = [0u16; 2];
                    for unit in ch.encode_utf16(&mut units) {
                        let esc = if c % 4 == 1 {
                            format!("\\u{unit:04x}")
                        } else {
                            format!("\\u{unit:04X}")
                        };
                        self.out.extend_from_slice(esc.as_bytes());
                    }
                }
                3 if short.is_some() => self.out.extend_from_slice(short.unwrap().as_bytes()),
                _ if must_escape => {
                    let esc = short
                        .map(str::to_owned)
                        .unwrap_or_else(|| format!("\\u{:04x}", ch as u32));
                    self.out.extend_from_slice(esc.as_bytes());
                }
                _ => {
                    let mut buf = [0u8; 4];
                    self.out
                        .extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        self.out.push(b'"');
    }

    fn key(&mut self, k: &str) {
        self.string(k);
        self.ws();
        self.out.push(b':');
        self.ws();
    }

    fn value(&mut self, v: &Json, depth: u32) {
        self.ws();
        match v {
            Json::Null => self.out.extend_from_slice(b"null"),
            Json::Bool(b) => self
                .out
                .extend_from_slice(if *b { b"true" } else { b"false" }),
            Json::Int(i) => self.out.extend_from_slice(i.to_string().as_bytes()),
            Json::Float(f) if f.is_finite() => {
                self.out.extend_from_slice(format!("{f:e}").as_bytes())
            }
            Json::Float(_) => self.out.extend_from_slice(b"0.0"),
            Json::Str(t) => self.text(t),
            // Bound the recursion of the renderer itself; parsers get depth from `Nested`.
            Json::Array(_) | Json::Object(_) if depth > 200 => self.out.extend_from_slice(b"0"),
            Json::Array(items) => {
                self.out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    self.value(item, depth + 1);
                }
                self.ws();
                self.out.push(b']');
            }
            Json::Object(members) => {
                self.out.push(b'{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    self.ws();
                    self.text(k);
                    self.ws();
                    self.out.push(b':');
                    self.value(v, depth + 1);
                }
                self.ws();
                self.out.push(b'}');
            }
        }
        self.ws();
    }

    /// `{ member, member, … }`, each member between optional whitespace: the shape a message
    /// and its `params` share. `member` writes one member (key and value).
    fn object<T>(&mut self, members: &[T], mut member: impl FnMut(&mut Self, &T)) {
        self.out.push(b'{');
        for (i, m) in members.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.ws();
            member(self, m);
            self.ws();
        }
        self.out.push(b'}');
    }

    /// A member whose key is any text.
    fn other(&mut self, k: &Text, v: &Json) {
        self.text(k);
        self.ws();
        self.out.push(b':');
        self.value(v, 0);
    }

    fn message(&mut self, members: &[Member]) {
        self.ws();
        self.object(members, |w, m| match m {
            Member::JsonRpc(t) => {
                w.key("jsonrpc");
                w.text(t);
            }
            Member::Id(v) => {
                w.key("id");
                w.value(v, 0);
            }
            Member::Method(t) => {
                w.key("method");
                w.text(t);
            }
            Member::Params(ps) => {
                w.key("params");
                w.params(ps);
            }
            Member::ParamsValue(v) => {
                w.key("params");
                w.value(v, 0);
            }
            Member::Other(k, v) => w.other(k, v),
        });
        self.ws();
    }

    fn params(&mut self, ps: &[ParamMember]) {
        self.object(ps, |w, p| match p {
            ParamMember::Name(t) => {
                w.key("name");
                w.text(t);
            }
            ParamMember::Uri(t) => {
                w.key("uri");
                w.text(t);
            }
            ParamMember::Arguments(v) => {
                w.key("arguments");
                w.value(v, 0);
            }
            ParamMember::Meta(v) => {
                w.key("_meta");
                w.value(v, 0);
            }
            ParamMember::Meta2026 => {
                w.key("_meta");
                w.out.extend_from_slice(
                    br#"{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#,
                );
            }
            ParamMember::Notifications(fs) => {
                w.key("notifications");
                w.object(fs, |w, f| match f {
                    FilterMember::ResourceSubscriptions(uris) => {
                        w.key("resourceSubscriptions");
                        let uris = uris.iter().cloned().map(Json::Str).collect();
                        w.value(&Json::Array(uris), 0);
                    }
                    FilterMember::Other(k, v) => w.other(k, v),
                });
            }
            ParamMember::Other(k, v) => w.other(k, v),
        });
    }
}

/// Renders `body` in `style`; `scoped` are the names `Text::Scoped` picks from.
pub fn render(body: &Body, style: &Style, scoped: &[&str]) -> Vec<u8> {
    let mut w = Writer {
        out: Vec::new(),
        scoped,
        choices: &style.choices,
        next: 0,
    };
    if style.bom {
        w.out.extend_from_slice("\u{feff}".as_bytes());
    }
    match body {
        Body::Request {
            id,
            method,
            name,
            by_uri,
            extra,
            params_extra,
            order,
        } => {
            let mut params = vec![if *by_uri {
                ParamMember::Uri(name.clone())
            } else {
                ParamMember::Name(name.clone())
            }];
            params.extend(params_extra.iter().cloned());
            let mut members = vec![
                Member::JsonRpc(Text::Known(1)),
                Member::Id(Json::Int(*id)),
                Member::Method(method.clone()),
                Member::Params(params),
            ];
            let n = members.len();
            members.rotate_left(usize::from(*order) % n);
            members.extend(extra.iter().cloned());
            w.message(&members)
        }
        Body::One(members) => w.message(members),
        Body::Batch(messages) => {
            w.out.push(b'[');
            for (i, m) in messages.iter().enumerate() {
                if i > 0 {
                    w.out.push(b',');
                }
                w.message(m);
            }
            w.out.push(b']');
        }
        Body::Nested(depth, members) => {
            let depth = usize::from(*depth);
            w.out.extend(std::iter::repeat_n(b'[', depth));
            w.message(members);
            w.out.extend(std::iter::repeat_n(b']', depth));
        }
    }
    w.out
}
