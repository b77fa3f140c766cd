//! Per-request scopes at the HTTP layer: a `tools/call`, `prompts/get` or `resources/read`
//! (`resources/subscribe`, `resources/unsubscribe`, and a 2026-07-28 `subscriptions/listen`
//! naming the resource in `params.notifications.resourceSubscriptions`) for a tool, prompt or
//! resource whose scopes the token lacks is answered with a 403
//! `insufficient_scope` challenge before the handler runs, so the client can re-authorize with
//! the wider scope (MCP step-up authorization).
//!
//! The challenge follows MCP 2026-07-28 (SEP-2350;
//! `docs/specification/2026-07-28/basic/authorization/index.mdx` in
//! `modelcontextprotocol/modelcontextprotocol`, § Scope Challenge Handling): "servers **SHOULD**
//! include all scopes required for the current operation in a single challenge". For a batch
//! the operation is every request in it, so one 403 names the union of the scopes of every
//! scoped tool, prompt and resource the batch asks for (not only the ones found missing
//! first), and a client that steps up once can run the whole batch.
//!
//! # What the guard reads
//!
//! With a revision that makes rmcp verify the `Mcp-Method`/`Mcp-Name` headers against the body
//! (2026-07-28 and later, SEP-2243), the headers decide and the body is not read. Otherwise the
//! body is parsed, and the parse is built never to see less than rmcp does: every string a
//! message gives as `method`, `params.name`, `params.uri` or in
//! `params.notifications.resourceSubscriptions` counts, whatever else the message
//! holds (rmcp ignores members it does not know, so must the guard), including both values of a
//! duplicated key and every message of a batch. Seeing too much only refuses requests rmcp
//! would not run anyway; seeing too little would run a handler unchecked.

use std::{borrow::Cow, fmt};

use axum::{extract::Request, response::Response};
use base64::Engine;
use http::{HeaderMap, HeaderName, Method};
use serde::{
    Deserialize, Deserializer,
    de::{IgnoredAny, MapAccess, SeqAccess, Visitor},
};

use crate::{
    AuthInfo,
    challenge::{AuthError, Challenge},
    layer::merge_scopes,
    resource_scopes::ResourceScopes,
    scopes::ScopeHierarchy,
    tools::ToolScopes,
};

/// Something a request asks for that may need scopes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Guarded {
    /// `tools/call` of this tool.
    Tool(String),
    /// `prompts/get` of this prompt.
    Prompt(String),
    /// `resources/read`, `resources/subscribe` or `resources/unsubscribe` of this URI, or a
    /// `subscriptions/listen` that lists it in `resourceSubscriptions`: one rule for all, so a
    /// client without the scope can neither read a resource nor follow its updates.
    Resource(String),
}

/// The guarded methods, with the parameter that names what they act on (the same pairs rmcp
/// reads `Mcp-Name` from: rmcp 3.11, `src/transport/common/mcp_headers.rs`, `NAME_FROM_NAME`
/// and `NAME_FROM_URI`).
const TOOLS_CALL: &str = "tools/call";
const PROMPTS_GET: &str = "prompts/get";
const RESOURCES_READ: &str = "resources/read";
const RESOURCES_SUBSCRIBE: &str = "resources/subscribe";
const RESOURCES_UNSUBSCRIBE: &str = "resources/unsubscribe";
/// MCP 2026-07-28 replaces `resources/subscribe` with one long-lived `subscriptions/listen`
/// whose `params.notifications.resourceSubscriptions` lists the URIs to follow
/// (`schema/2026-07-28/schema.ts`, `SubscriptionsListenRequest` and `SubscriptionFilter`;
/// rmcp 3.11 `src/model.rs`, `SubscriptionsListenRequestParams`, and
/// `src/handler/server.rs`, which hands that filter to the server's
/// `accepted_subscription_filter`). It carries no `Mcp-Name` (rmcp 3.11
/// `src/transport/common/mcp_headers.rs`, `extract_name`), so only the body names its URIs.
const SUBSCRIPTIONS_LISTEN: &str = "subscriptions/listen";
const TOOLS_LIST: &str = "tools/list";

/// The scope tables of a server, as the guard checks them.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequiredScopes {
    pub(crate) tools: ToolScopes,
    /// Prompt name → scopes (the same name table as tools').
    pub(crate) prompts: ToolScopes,
    pub(crate) resources: ResourceScopes,
}

impl RequiredScopes {
    fn is_empty(&self) -> bool {
        self.tools.is_empty() && self.prompts.is_empty() && self.resources.is_empty()
    }

    fn get(&self, item: &Guarded) -> Cow<'_, [String]> {
        match item {
            Guarded::Tool(name) => Cow::Borrowed(self.tools.get(name)),
            Guarded::Prompt(name) => Cow::Borrowed(self.prompts.get(name)),
            Guarded::Resource(uri) => Cow::Owned(self.resources.get(uri)),
        }
    }
}

pub(crate) struct StepUp {
    scopes: RequiredScopes,
    hierarchy: ScopeHierarchy,
    /// Every scoped tool name, prompt name and resource pattern (and `tools/list`), searched
    /// for at once by [`StepUp::may_need_scopes`].
    scoped_names: NameSearch,
    challenge: Challenge,
    max_body_bytes: usize,
    /// Some tool has scopes: a `tools/list` answer gets its `securitySchemes` copied to the
    /// tool objects ([`crate::tool_list::hoist_security_schemes`]), so the guard also says
    /// whether a request lists tools.
    marks_tools: bool,
}

/// What the guard found in a request it let through.
pub(crate) struct Passed {
    /// The request is a `tools/list` (only looked for when some tool has scopes).
    pub(crate) lists_tools: bool,
}

impl StepUp {
    /// `None` when nothing has scopes: then there is nothing to check.
    pub(crate) fn new(
        scopes: RequiredScopes,
        hierarchy: ScopeHierarchy,
        challenge: Challenge,
        max_body_bytes: usize,
    ) -> Option<Self> {
        if scopes.is_empty() {
            return None;
        }
        let marks_tools = !scopes.tools.is_empty();
        let names: Vec<&str> = scopes
            .tools
            .names()
            .chain(scopes.prompts.names())
            .chain(scopes.resources.patterns())
            .chain(marks_tools.then_some(TOOLS_LIST))
            .collect();
        let scoped_names = NameSearch::new(&names);
        Some(Self {
            scopes,
            hierarchy,
            scoped_names,
            challenge,
            max_body_bytes,
            marks_tools,
        })
    }
}

/// A search for any of several byte strings in a request body: the guard's fast path.
///
/// One pass of `aho-corasick`'s packed (SIMD, "Teddy") searcher over the body finds any of the
/// names at once, so an unscoped call costs about the same however many names are scoped;
/// bodies shorter than its minimum length are searched by its Rabin-Karp fallback. (Its
/// general automaton, `AhoCorasick`, was measured slower on bodies this short: BENCHMARKS.md,
/// "The step-up guard alone".) Where the packed searcher cannot be built (no SIMD on the
/// target, or more patterns than it takes) each name gets its own `memmem` pass.
enum NameSearch {
    Packed(aho_corasick::packed::Searcher),
    EachName(Vec<memchr::memmem::Finder<'static>>),
}

impl NameSearch {
    fn new(names: &[&str]) -> Self {
        match aho_corasick::packed::Config::new()
            .builder()
            .extend(names)
            .build()
        {
            Some(packed) => Self::Packed(packed),
            None => Self::each_name(names),
        }
    }

    fn each_name(names: &[&str]) -> Self {
        Self::EachName(
            names
                .iter()
                .map(|name| memchr::memmem::Finder::new(name.as_bytes()).into_owned())
                .collect(),
        )
    }

    /// Whether any of the names occurs in `haystack`.
    fn any_in(&self, haystack: &[u8]) -> bool {
        match self {
            Self::Packed(searcher) => searcher.find(haystack).is_some(),
            Self::EachName(finders) => finders.iter().any(|f| f.find(haystack).is_some()),
        }
    }
}

/// A JSON string, or `None` for any other value (skipped unparsed). rmcp ignores a member it
/// has no field for whatever its type, so a non-string `uri` in a `tools/call` must not make
/// the guard's parse fail where rmcp's succeeds. `Cow`: escaped strings (`"tools\/call"`) are
/// decoded exactly as rmcp decodes them, unescaped ones borrowed.
struct MaybeStr<'a>(Option<Cow<'a, str>>);

impl<'de> Deserialize<'de> for MaybeStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MaybeStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Owned(v))))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A member name the guard cares about, compared after unescaping (`"met\u0068od"` is
/// `method`, as rmcp reads it).
enum Key {
    Method,
    Params,
    Name,
    Uri,
    Notifications,
    ResourceSubscriptions,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "method" => Key::Method,
                    "params" => Key::Params,
                    "name" => Key::Name,
                    "uri" => Key::Uri,
                    "notifications" => Key::Notifications,
                    "resourceSubscriptions" => Key::ResourceSubscriptions,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

/// What one message names: every `method`, every `params.name` and `params.uri`, and every
/// string in a `params.notifications.resourceSubscriptions` array, duplicates included.
#[derive(Default)]
struct Seen<'a> {
    methods: Strings<'a>,
    names: Strings<'a>,
    uris: Strings<'a>,
    subscriptions: Strings<'a>,
}

/// The string values seen for one member, in order. The first is kept inline, so the usual
/// message (one `method`, one `name`) allocates nothing here.
#[derive(Default)]
struct Strings<'a> {
    first: Option<Cow<'a, str>>,
    more: Vec<Cow<'a, str>>,
}

impl<'a> Strings<'a> {
    fn extend(&mut self, values: impl IntoIterator<Item = Cow<'a, str>>) {
        for value in values {
            if self.first.is_none() {
                self.first = Some(value);
            } else {
                self.more.push(value);
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Cow<'a, str>> {
        self.first.iter().chain(&self.more)
    }
}

impl<'a> Seen<'a> {
    /// The guarded requests among what was seen. Over-approximates on purpose: with two
    /// `method`s, whatever rmcp makes of them, each is paired with every name or URI.
    fn guarded(self, out: &mut Scan) {
        fn owned<'s>(
            values: &'s Strings<'_>,
            make: fn(String) -> Guarded,
        ) -> impl Iterator<Item = Guarded> + 's {
            values.iter().map(move |v| make(v.as_ref().to_owned()))
        }
        for method in self.methods.iter() {
            match method.as_ref() {
                TOOLS_CALL => out.items.extend(owned(&self.names, Guarded::Tool)),
                PROMPTS_GET => out.items.extend(owned(&self.names, Guarded::Prompt)),
                RESOURCES_READ | RESOURCES_SUBSCRIBE | RESOURCES_UNSUBSCRIBE => {
                    out.items.extend(owned(&self.uris, Guarded::Resource));
                }
                SUBSCRIPTIONS_LISTEN => {
                    out.items
                        .extend(owned(&self.subscriptions, Guarded::Resource));
                }
                TOOLS_LIST => out.lists_tools = true,
                _ => {}
            }
        }
    }
}

/// One message: an object (anything else names nothing).
struct MessageSeen<'a>(Seen<'a>);

impl<'de> Deserialize<'de> for MessageSeen<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut seen = Seen::default();
        d.deserialize_any(Collect::<MESSAGE>(&mut seen))?;
        Ok(MessageSeen(seen))
    }
}

/// Which object [`Collect`] reads.
const MESSAGE: u8 = 0;
/// `params`.
const PARAMS: u8 = 1;
/// `params.notifications`.
const FILTER: u8 = 2;
/// `params.notifications.resourceSubscriptions` (an array).
const SUBSCRIPTIONS: u8 = 3;

/// Reads one level of a message (which one: `LEVEL`) and adds what it names straight into the
/// message's [`Seen`], so nothing is built per level and moved up. A value of another shape
/// than the level expects names nothing (rmcp's parse of it fails, or it is not a request).
struct Collect<'s, 'a, const LEVEL: u8>(&'s mut Seen<'a>);

impl<'de, const LEVEL: u8> serde::de::DeserializeSeed<'de> for Collect<'_, 'de, LEVEL> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, const LEVEL: u8> Visitor<'de> for Collect<'_, 'de, LEVEL> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
        let seen = self.0;
        while let Some(key) = a.next_key::<Key>()? {
            match (LEVEL, key) {
                (MESSAGE, Key::Method) => seen.methods.extend(a.next_value::<MaybeStr<'de>>()?.0),
                (MESSAGE, Key::Params) => a.next_value_seed(Collect::<PARAMS>(seen))?,
                (PARAMS, Key::Name) => seen.names.extend(a.next_value::<MaybeStr<'de>>()?.0),
                (PARAMS, Key::Uri) => seen.uris.extend(a.next_value::<MaybeStr<'de>>()?.0),
                (PARAMS, Key::Notifications) => a.next_value_seed(Collect::<FILTER>(seen))?,
                (FILTER, Key::ResourceSubscriptions) => {
                    a.next_value_seed(Collect::<SUBSCRIPTIONS>(seen))?;
                }
                _ => {
                    a.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
    /// Non-string entries are skipped: rmcp's `Vec<String>` refuses the whole request for one,
    /// so none of it runs.
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
        while let Some(value) = a.next_element::<MaybeStr<'de>>()? {
            if LEVEL == SUBSCRIPTIONS {
                self.0.subscriptions.extend(value.0);
            }
        }
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// What a request asks for, as the guard sees it.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Scan {
    /// The guarded requests, each checked against the scope tables.
    pub(crate) items: Vec<Guarded>,
    /// A `tools/list` is among them.
    pub(crate) lists_tools: bool,
}

impl Scan {
    /// The first tool called, for the access line.
    fn first_tool(&self) -> Option<String> {
        self.items.iter().find_map(|item| match item {
            Guarded::Tool(name) => Some(name.clone()),
            _ => None,
        })
    }
}

/// What a JSON-RPC body (one message, or a batch from 2025-03-26 clients) asks for.
///
/// The first byte picks the shape, so the body is parsed once, straight into borrowed fields
/// (an untagged enum would first buffer the whole document into serde's `Content` tree). A body
/// that is not JSON names nothing: rmcp answers it with a parse error.
fn requested(body: &[u8]) -> Scan {
    let mut out = Scan::default();
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => {
            if let Ok(messages) = serde_json::from_slice::<Vec<MessageSeen<'_>>>(body) {
                for m in messages {
                    m.0.guarded(&mut out);
                }
            }
        }
        _ => {
            if let Ok(m) = serde_json::from_slice::<MessageSeen<'_>>(body) {
                m.0.guarded(&mut out);
            }
        }
    }
    out
}

// Parsed once: looking a header up by `&str` parses and checks the name on every call.
static MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
static MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
static MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");

/// Whether the request negotiated a revision (2026-07-28 and later) for which rmcp verifies that
/// the `Mcp-Method`/`Mcp-Name` headers match the body; only then are the headers trusted. The
/// same test as rmcp's (3.11, `src/transport/streamable_http_server/tower.rs`,
/// `validate_standard_headers`: the first `MCP-Protocol-Version` value compared as a string
/// with `ProtocolVersion::STANDARD_HEADERS`).
fn headers_are_verified(headers: &HeaderMap) -> bool {
    headers
        .get(&MCP_PROTOCOL_VERSION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v >= "2026-07-28")
}

/// What the standard headers say a request asks for, read the way rmcp validates them (3.11,
/// `src/transport/common/mcp_headers.rs`, `validate_request_headers`, `header_str` and
/// `decode_header_value`): one value each, visible ASCII, `Mcp-Name` possibly wrapped as
/// `=?base64?…?=`. `None` when the headers do not settle it (absent, repeated, undecodable):
/// then the body decides. rmcp refuses such a request anyway, but the guard does not rely on it.
fn requested_by_headers(headers: &HeaderMap) -> Option<Scan> {
    let single = |name: &HeaderName| {
        let mut values = headers.get_all(name).iter();
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        value.to_str().ok()
    };
    let method = single(&MCP_METHOD)?;
    let make: fn(String) -> Guarded = match method {
        TOOLS_CALL => Guarded::Tool,
        PROMPTS_GET => Guarded::Prompt,
        RESOURCES_READ | RESOURCES_SUBSCRIBE | RESOURCES_UNSUBSCRIBE => Guarded::Resource,
        // Its URIs are only in the body.
        SUBSCRIPTIONS_LISTEN => return None,
        // rmcp checks that the body's method is this one: nothing guarded is asked for.
        _ => {
            return Some(Scan {
                items: Vec::new(),
                lists_tools: method == TOOLS_LIST,
            });
        }
    };
    let raw = single(&MCP_NAME)?;
    let name = match raw
        .strip_prefix("=?base64?")
        .and_then(|inner| inner.strip_suffix("?="))
    {
        Some(inner) => String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(inner)
                .ok()?,
        )
        .ok()?,
        None => raw.to_owned(),
    };
    Some(Scan {
        items: vec![make(name)],
        lists_tools: false,
    })
}

impl StepUp {
    /// Refuses (403 `insufficient_scope`) a request for a tool, prompt or resource whose
    /// scopes the caller's token lacks. Otherwise hands the request back, its body re-assembled
    /// from the bytes read, and says whether it lists tools. `tool`: where to put the name of
    /// the tool the request calls (the first, for a batch), whether it passes or not, when the
    /// guard learns it (from verified headers, or from a body it parses); `name_tool` makes it
    /// parse the body for it even when the decision does not need a parse.
    pub(crate) async fn check(
        &self,
        req: &mut Request,
        name_tool: bool,
        mut tool: Option<&mut Option<String>>,
    ) -> Result<Passed, Response> {
        let authenticated = req.extensions().get::<AuthInfo>().is_some();
        if req.method() != Method::POST || !(authenticated || self.marks_tools) {
            return Ok(Passed { lists_tools: false });
        }
        if headers_are_verified(req.headers())
            && let Some(scan) = requested_by_headers(req.headers())
        {
            if let Some(slot) = tool.as_deref_mut() {
                *slot = scan.first_tool();
            }
            if let Some(info) = req.extensions().get::<AuthInfo>()
                && let Some(refusal) = refuse(self, info, req.headers(), &scan.items)
            {
                return Err(refusal);
            }
            return Ok(Passed {
                lists_tools: scan.lists_tools && self.marks_tools,
            });
        }
        // Read the body once (bounded), look, and hand the same bytes on. The request itself is
        // not moved: it is some 240 bytes, copied at each move.
        let bytes = crate::body::take_whole(req.body_mut(), self.max_body_bytes)
            .await
            .map_err(crate::body::Unreadable::response)?;
        let scan = self.requested_in_body(&bytes, name_tool);
        if let Some(slot) = tool {
            *slot = scan.first_tool();
        }
        if let Some(info) = req.extensions().get::<AuthInfo>()
            && let Some(refusal) = refuse(self, info, req.headers(), &scan.items)
        {
            return Err(refusal);
        }
        Ok(Passed {
            lists_tools: scan.lists_tools && self.marks_tools,
        })
    }

    /// What a body asks for, as far as the guard needs to know: parsing is skipped when it
    /// cannot change the outcome (nothing scoped can be named in the body and the access line
    /// does not want the tool's name).
    pub(crate) fn requested_in_body(&self, body: &[u8], name_tool: bool) -> Scan {
        if name_tool || self.may_need_scopes(body) {
            requested(body)
        } else {
            Scan::default()
        }
    }

    /// What a request with these headers and this body asks for, by the rule
    /// [`StepUp::check`] follows.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn requested_by(&self, headers: &HeaderMap, body: &[u8]) -> Vec<Guarded> {
        if headers_are_verified(headers)
            && let Some(scan) = requested_by_headers(headers)
        {
            return scan.items;
        }
        self.requested_in_body(body, false).items
    }

    /// Whether `item` needs any scope.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn is_scoped(&self, item: &Guarded) -> bool {
        !self.scopes.get(item).is_empty()
    }

    /// Whether `body` can possibly name something scoped. JSON spells a string's characters
    /// either literally or with a `\` escape, so a body that has no backslash and does not
    /// contain a scoped tool's or prompt's name, or a resource pattern, verbatim cannot name
    /// any of them (a URI a pattern matches starts with the pattern); nor can it be a
    /// `tools/list` without containing that verbatim.
    fn may_need_scopes(&self, body: &[u8]) -> bool {
        memchr::memchr(b'\\', body).is_some() || self.scoped_names.any_in(body)
    }
}

/// The 403 for a request asking for `items`, if the token lacks a scope one of them needs. The
/// challenge names the scopes of every scoped item asked for (SEP-2350: all scopes of the
/// operation in one challenge), after those already granted, so a client that replaces its
/// scope set with the challenge's (rather than adding to it) keeps what it had.
fn refuse(
    step_up: &StepUp,
    info: &AuthInfo,
    headers: &http::HeaderMap,
    items: &[Guarded],
) -> Option<Response> {
    let mut operation: Vec<String> = Vec::new();
    let mut refused = false;
    for item in items {
        let required = step_up.scopes.get(item);
        if required.is_empty() {
            continue;
        }
        refused |= !step_up.hierarchy.satisfies(info.scopes(), &required);
        operation = merge_scopes(&operation, &required);
    }
    if !refused {
        return None;
    }
    tracing::debug!(user = info.user_id(), "request refused: insufficient scope");
    let scope = merge_scopes(info.scopes(), &operation);
    Some(
        step_up
            .challenge
            .response_to(&AuthError::InsufficientScope { scope }, headers),
    )
}

#[cfg(test)]
mod tests {
    use rmcp::model::{ClientJsonRpcMessage, ClientRequest, JsonRpcMessage};

    use super::*;

    fn tool(name: &str) -> Guarded {
        Guarded::Tool(name.to_owned())
    }

    fn guard() -> StepUp {
        let mut scopes = RequiredScopes::default();
        scopes
            .tools
            .insert("admin-report", vec!["admin:read".into()]);
        scopes
            .tools
            .insert("r\u{e9}sum\u{e9}-\u{1f512}", vec!["cv:read".into()]);
        scopes.prompts.insert("incident", vec!["ops:read".into()]);
        scopes
            .resources
            .insert("file:///secret/", vec!["secret:read".into()]);
        scopes
            .resources
            .insert("db://users", vec!["users:read".into()]);
        StepUp::new(scopes, ScopeHierarchy::exact(), Challenge::bare(), 1 << 20).unwrap()
    }

    /// What rmcp runs for `body`: its Streamable HTTP server parses a POST body with
    /// `serde_json::from_slice::<ClientJsonRpcMessage>` (3.11,
    /// `src/transport/common/server_side_http.rs`, `expect_json`) and dispatches a request.
    fn rmcp_runs(body: &[u8]) -> Option<Guarded> {
        let Ok(JsonRpcMessage::Request(request)) =
            serde_json::from_slice::<ClientJsonRpcMessage>(body)
        else {
            return None;
        };
        match request.request {
            ClientRequest::CallToolRequest(r) => Some(Guarded::Tool(r.params.name.into_owned())),
            ClientRequest::GetPromptRequest(r) => Some(Guarded::Prompt(r.params.name)),
            ClientRequest::ReadResourceRequest(r) => Some(Guarded::Resource(r.params.uri)),
            ClientRequest::SubscribeRequest(r) => Some(Guarded::Resource(r.params.uri)),
            ClientRequest::UnsubscribeRequest(r) => Some(Guarded::Resource(r.params.uri)),
            _ => None,
        }
    }

    #[test]
    fn finds_what_single_and_batch_messages_ask_for() {
        let one = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin-report","arguments":{}}}"#;
        assert_eq!(requested(one).items, vec![tool("admin-report")]);
        let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"a\u0062"}}]"#;
        assert_eq!(requested(batch).items, vec![tool("ab")]);
        let escaped = br#"{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"admin\u002dreport"}}"#;
        assert_eq!(requested(escaped).items, vec![tool("admin-report")]);
        let prompt =
            br#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"incident"}}"#;
        assert_eq!(
            requested(prompt).items,
            vec![Guarded::Prompt("incident".into())]
        );
        let read = br#"{"jsonrpc":"2.0","id":1,"params":{"uri":"file:\/\/\/secret\/k"},"method":"resources/read"}"#;
        assert_eq!(
            requested(read).items,
            vec![Guarded::Resource("file:///secret/k".into())]
        );
        for method in ["resources\\/subscribe", "resources/unsubscribe"] {
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{"uri":"db://users/1"}}}}"#
            );
            assert_eq!(
                requested(body.as_bytes()).items,
                vec![Guarded::Resource("db://users/1".into())],
                "{body}"
            );
            assert_eq!(
                rmcp_runs(body.as_bytes()),
                Some(Guarded::Resource("db://users/1".into()))
            );
        }
        assert!(requested(b"not json").items.is_empty());
        let list = requested(br#"{"method":"tools/list"}"#);
        assert!(list.items.is_empty());
        assert!(list.lists_tools);
        assert!(requested(br#"{"method":"tools\/list","id":1}"#).lists_tools);
        assert!(!requested(one).lists_tools);
    }

    /// The input `fuzz/` target `step_up_differential` found against the guard as it was before
    /// ca2c009 (from an empty corpus, in 46,489 executions): rmcp decodes `tools\/call` and runs
    /// the tool; the guard must see the call too, through the same path a request takes.
    #[test]
    fn sees_the_call_the_fuzzer_found_behind_an_escaped_method() {
        let body = r#"{"method":"tools\/call","params":{"name":"résumé-🔒"},"jsonrpc":"2.0","id":5136151966242003967}"#;
        assert_eq!(
            guard().requested_in_body(body.as_bytes(), false).items,
            vec![tool("r\u{e9}sum\u{e9}-\u{1f512}")]
        );
    }

    /// Bodies built to make a parser see less than rmcp does: every one rmcp would run for
    /// something scoped, the guard must see it too, through the path a request takes (fast
    /// path included). Each is checked against rmcp's own parse, so the table cannot drift
    /// from what rmcp actually runs.
    #[test]
    fn sees_everything_rmcp_runs_however_the_body_is_spelled() {
        let bodies: &[&str] = &[
            // Escapes in values and in member names.
            r#"{"jsonrpc":"2.0","id":1,"method":"prompts\/get","params":{"name":"inci\u0064ent"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"m\u0065thod":"resources/read","p\u0061rams":{"\u0075ri":"db://users"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"db:\/\/users\/42"}}"#,
            // Members rmcp ignores, of any type, next to the ones it reads.
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin-report","uri":7,"arguments":{}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///secret/a","name":{"x":[1]}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"incident","uri":null,"uri":false}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","name":5,"params":{"name":"incident"}}"#,
            // Members in any order, whitespace anywhere.
            " \r\n{ \"params\" : { \"uri\" : \"file:///secret/x\" } , \"id\" : 1 , \"method\" : \"resources/read\" , \"jsonrpc\" : \"2.0\" }\n",
            // Non-ASCII names, escaped as surrogate pairs.
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"r\u00e9sum\u00e9-\ud83d\udd12"}}"#,
        ];
        let step_up = guard();
        for body in bodies {
            let runs = rmcp_runs(body.as_bytes())
                .unwrap_or_else(|| panic!("rmcp does not run {body}: fix the table"));
            assert!(
                !step_up.scopes.get(&runs).is_empty(),
                "{body}: {runs:?} is not scoped"
            );
            let seen = step_up.requested_in_body(body.as_bytes(), false).items;
            assert!(
                seen.contains(&runs),
                "{body}: rmcp runs {runs:?}, guard saw {seen:?}"
            );
        }
    }

    /// A duplicated key: whatever rmcp does with it (refuse, or take one of the values), the
    /// guard sees every value, so no choice of rmcp's can run something it did not check.
    /// (rmcp 3.11 refuses each of these bodies as a duplicate field; the guard does not rely
    /// on that.)
    #[test]
    fn duplicate_keys_show_every_value() {
        let bodies: &[&str] = &[
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","name":"admin-report"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"resources/read","params":{"uri":"db://users"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"db://other"},"params":{"uri":"db://users"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"incident","arguments":{},"name":"other"}}"#,
        ];
        let step_up = guard();
        for body in bodies {
            let seen = step_up.requested_in_body(body.as_bytes(), false).items;
            if let Some(runs) = rmcp_runs(body.as_bytes()) {
                assert!(
                    seen.contains(&runs),
                    "{body}: rmcp runs {runs:?}, guard saw {seen:?}"
                );
            }
            assert!(
                seen.iter().any(|g| !step_up.scopes.get(g).is_empty()),
                "{body}: the scoped value must be seen, saw {seen:?}"
            );
        }
    }

    /// rmcp 3.11 refuses batches, but the guard checks every message of one anyway (a later
    /// rmcp, or a proxy in front, may split them).
    #[test]
    fn a_batch_shows_every_message() {
        let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"incident"}},{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"db://users?id=1"}},{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"admin-report"}}]"#;
        assert_eq!(
            guard().requested_in_body(batch, false).items,
            vec![
                Guarded::Prompt("incident".into()),
                Guarded::Resource("db://users?id=1".into()),
                tool("admin-report"),
            ]
        );
    }

    /// The URIs rmcp hands to the server's `accepted_subscription_filter` for a
    /// `subscriptions/listen` body (3.11, `src/handler/server.rs`).
    fn rmcp_listens(body: &[u8]) -> Vec<Guarded> {
        let Ok(JsonRpcMessage::Request(request)) =
            serde_json::from_slice::<ClientJsonRpcMessage>(body)
        else {
            return Vec::new();
        };
        match request.request {
            ClientRequest::SubscriptionsListenRequest(r) => r
                .params
                .notifications
                .resource_subscriptions
                .unwrap_or_default()
                .into_iter()
                .map(Guarded::Resource)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// A 2026-07-28 `subscriptions/listen` follows resources through
    /// `params.notifications.resourceSubscriptions`: the guard sees every URI rmcp would hand
    /// the server, however the body spells it, and with the 2026-07-28 headers too (they carry
    /// no `Mcp-Name` for this method, so the body decides).
    #[test]
    fn sees_every_resource_a_subscriptions_listen_follows() {
        let bodies: &[&str] = &[
            r#"{"jsonrpc":"2.0","id":"listen-1","method":"subscriptions/listen","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}},"notifications":{"toolsListChanged":true,"resourceSubscriptions":["file:///public/a","db://users/7"]}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions\/listen","params":{"notifications":{"resource\u0053ubscriptions":["file:\/\/\/secret\/k"]}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"params":{"notific\u0061tions":{"resourceSubscriptions":[7,"db://users"],"promptsListChanged":false}},"method":"subscriptions/listen"}"#,
        ];
        let step_up = guard();
        let verified = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "subscriptions/listen"),
        ]);
        for body in bodies {
            let runs = rmcp_listens(body.as_bytes());
            let scoped: Vec<_> = runs
                .iter()
                .filter(|g| !step_up.scopes.get(g).is_empty())
                .collect();
            // Non-string entries make rmcp refuse the body: then the guard's view is checked
            // against the table below instead.
            if !body.contains("[7,") {
                assert!(!scoped.is_empty(), "{body}: rmcp follows nothing scoped");
            }
            for h in [HeaderMap::new(), verified.clone()] {
                let seen = step_up.requested_by(&h, body.as_bytes());
                for g in &scoped {
                    assert!(
                        seen.contains(g),
                        "{body}: rmcp follows {g:?}, guard saw {seen:?}"
                    );
                }
                if body.contains("[7,") {
                    assert_eq!(seen, vec![Guarded::Resource("db://users".into())]);
                }
            }
        }
        // Duplicated members: every value is seen, whichever rmcp would keep.
        let dup = br#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":["db://users"]},"notifications":{"resourceSubscriptions":["x:1"],"resourceSubscriptions":["file:///secret/z"]}}}"#;
        assert_eq!(
            step_up.requested_in_body(dup, false).items,
            vec![
                Guarded::Resource("db://users".into()),
                Guarded::Resource("x:1".into()),
                Guarded::Resource("file:///secret/z".into()),
            ]
        );
        // The same members under another method name nothing; nor does a filter that is not an
        // object, or a `resourceSubscriptions` outside `notifications`.
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"notifications":{"resourceSubscriptions":["db://users"]}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":["db://users"]}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"resourceSubscriptions":["db://users"],"notifications":{}}}"#,
        ] {
            assert!(rmcp_listens(body.as_bytes()).is_empty(), "{body}");
            assert!(
                step_up
                    .requested_in_body(body.as_bytes(), false)
                    .items
                    .is_empty(),
                "{body}"
            );
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    /// With a verified revision the headers decide, `Mcp-Name` decoded as rmcp decodes it
    /// (`=?base64?…?=`): read raw, `=?base64?YWRtaW4tcmVwb3J0?=` would be an unknown tool and
    /// the call to `admin-report` would run unchecked (rmcp accepts the header: it decodes it
    /// to the body's name).
    #[test]
    fn standard_headers_are_decoded_as_rmcp_decodes_them() {
        let step_up = guard();
        let body =
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin-report"}}"#;
        let h = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?YWRtaW4tcmVwb3J0?="),
        ]);
        assert_eq!(step_up.requested_by(&h, body), vec![tool("admin-report")]);
        let h = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "resources/read"),
            ("mcp-name", "db://users/1"),
        ]);
        assert_eq!(
            step_up.requested_by(&h, b"{}"),
            vec![Guarded::Resource("db://users/1".into())]
        );
        let h = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "prompts/get"),
            ("mcp-name", "incident"),
        ]);
        assert_eq!(
            step_up.requested_by(&h, b"{}"),
            vec![Guarded::Prompt("incident".into())]
        );
    }

    /// Headers that do not settle the question (repeated, undecodable, missing `Mcp-Name`) and
    /// headers of a revision rmcp does not verify leave the decision to the body.
    #[test]
    fn unclear_or_unverified_headers_leave_it_to_the_body() {
        let step_up = guard();
        let body =
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin-report"}}"#;
        for pairs in [
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "whoami"),
                ("mcp-name", "whoami"),
            ][..],
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "=?base64?not base64?="),
            ],
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
            ],
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/list"),
                ("mcp-method", "tools/list"),
            ],
            &[
                ("mcp-protocol-version", "2025-11-25"),
                ("mcp-method", "tools/list"),
            ],
        ] {
            assert_eq!(
                step_up.requested_by(&headers(pairs), body),
                vec![tool("admin-report")],
                "{pairs:?}"
            );
        }
    }

    /// The fast path's search finds a name wherever a plain substring search does, with the
    /// packed searcher and with the per-name fallback, for bodies shorter and longer than the
    /// packed searcher's minimum length, and with more names than it takes.
    #[test]
    fn name_search_finds_what_a_substring_search_finds() {
        let few = [
            "admin-report",
            "incident",
            "file:///secret/",
            "db://users",
            TOOLS_LIST,
        ];
        let many: Vec<String> = (0..300).map(|i| format!("tool-{i:03}-x")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let filler = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"#;
        for names in [&few[..], &many[..]] {
            let searchers = [NameSearch::new(names), NameSearch::each_name(names)];
            let mut bodies: Vec<Vec<u8>> = vec![Vec::new(), b"x".to_vec(), filler.into()];
            for name in names.iter().step_by(7).chain(&names[names.len() - 1..]) {
                for (before, after) in [("", ""), ("\"", "\""), (filler, "\"}}"), ("", filler)] {
                    bodies.push(format!("{before}{name}{after}").into_bytes());
                    // One byte short of the name: no match.
                    let cut = &name[..name.len() - 1];
                    bodies.push(format!("{before}{cut}{after}").into_bytes());
                }
            }
            for body in &bodies {
                let expected = names
                    .iter()
                    .any(|n| body.windows(n.len()).any(|w| w == n.as_bytes()));
                for searcher in &searchers {
                    assert_eq!(
                        searcher.any_in(body),
                        expected,
                        "{}",
                        String::from_utf8_lossy(body)
                    );
                }
            }
        }
        // The packed searcher is the one in use where SIMD is (every x86-64 CPU has SSE2+; the
        // searcher needs SSSE3, which every CPU these tests run on has).
        assert!(
            matches!(NameSearch::new(&few), NameSearch::Packed(_)) || !cfg!(target_arch = "x86_64")
        );
    }

    #[test]
    fn skips_parsing_only_when_nothing_scoped_can_be_named() {
        let step_up = guard();
        let whoami =
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami"}}"#;
        assert!(!step_up.may_need_scopes(whoami));
        let literal = br#"{"method":"tools/call","params":{"name":"admin-report"}}"#;
        assert!(step_up.may_need_scopes(literal));
        let prompt = br#"{"method":"prompts/get","params":{"name":"incident"}}"#;
        assert!(step_up.may_need_scopes(prompt));
        let under = br#"{"method":"resources/read","params":{"uri":"file:///secret/deep/x"}}"#;
        assert!(step_up.may_need_scopes(under));
        let public = br#"{"method":"resources/read","params":{"uri":"file:///public/x"}}"#;
        assert!(!step_up.may_need_scopes(public));
        // Any escape forces the parse: `\u002d` is the `-` of `admin-report`.
        let escaped = br#"{"method":"tools/call","params":{"name":"admin\u002dreport"}}"#;
        assert!(step_up.may_need_scopes(escaped));
        assert!(
            StepUp::new(
                RequiredScopes::default(),
                ScopeHierarchy::default(),
                Challenge::new("http://x/m"),
                1
            )
            .is_none()
        );
    }
}
