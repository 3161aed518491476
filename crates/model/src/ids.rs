//! Typed document ids: `Id<Users>`, `Id<Meetings>`, …
//!
//! On the wire an id is the plain Convex id string; deserializing checks that
//! it is a well-formed id *of the right table*, so a function taking
//! `meetingId: Id<Meetings>` can never be handed a user id.

use std::fmt;
use std::marker::PhantomData;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use values::{DocumentId, Value};

/// A table whose documents have typed ids.
pub trait Table: Send + Sync + 'static {
    /// The table name.
    const NAME: &'static str;
}

/// The id of a document of table `T`.
pub struct Id<T: Table> {
    raw: DocumentId,
    _table: PhantomData<fn() -> T>,
}

impl<T: Table> Id<T> {
    /// Wraps a raw id, checking its table.
    pub fn new(raw: DocumentId) -> Option<Self> {
        (raw.table() == values::table_number(T::NAME)).then_some(Self {
            raw,
            _table: PhantomData,
        })
    }

    /// Parses an id string of table `T`.
    pub fn parse(s: &str) -> Option<Self> {
        DocumentId::decode(s).and_then(Self::new)
    }

    /// The raw engine id.
    pub fn raw(self) -> DocumentId {
        self.raw
    }

    /// The id as a Convex value (a string).
    pub fn to_value(self) -> Value {
        Value::String(self.raw.encode())
    }
}

impl<T: Table> Clone for Id<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: Table> Copy for Id<T> {}
impl<T: Table> PartialEq for Id<T> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}
impl<T: Table> Eq for Id<T> {}
impl<T: Table> std::hash::Hash for Id<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.raw.hash(state);
    }
}
impl<T: Table> fmt::Debug for Id<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id<{}>({})", T::NAME, self.raw)
    }
}
impl<T: Table> fmt::Display for Id<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.raw, f)
    }
}

impl<T: Table> Serialize for Id<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw.encode())
    }
}

impl<'de, T: Table> Deserialize<'de> for Id<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("\"{s}\" is not an id of table {}", T::NAME))
        })
    }
}

impl<T: Table> From<Id<T>> for Value {
    fn from(id: Id<T>) -> Value {
        id.to_value()
    }
}

/// Declares marker types for tables.
macro_rules! tables {
    ($($(#[$m:meta])* $ty:ident => $name:literal),* $(,)?) => {
        $(
            $(#[$m])*
            #[derive(Debug, Clone, Copy)]
            pub enum $ty {}
            impl Table for $ty {
                const NAME: &'static str = $name;
            }
        )*
    };
}

tables! {
    /// `users`.
    Users => "users",
    /// `profiles`.
    Profiles => "profiles",
    /// `userSettings`.
    UserSettings => "userSettings",
    /// `interests`.
    Interests => "interests",
    /// `userInterests`.
    UserInterests => "userInterests",
    /// `meetings`.
    Meetings => "meetings",
    /// `meetingParticipants`.
    MeetingParticipants => "meetingParticipants",
    /// `meetingState`.
    MeetingState => "meetingState",
    /// `meetingEvents`.
    MeetingEvents => "meetingEvents",
    /// `messages`.
    Messages => "messages",
    /// `auditLogs`.
    AuditLogs => "auditLogs",
    /// `idempotencyKeys`.
    IdempotencyKeys => "idempotencyKeys",
    /// `rateLimits`.
    RateLimits => "rateLimits",
    /// `featureFlags`.
    FeatureFlags => "featureFlags",
}
