//! `serde_via_parse!`: a newtype travels as its string form and is read back
//! through its own fallible `parse`, so JSON input meets the same rules as
//! any other input (and the error names the rule).

/// `serde_via_parse!(Type)` writes `as_str()`; `serde_via_parse!(Type, display)`
/// writes the `Display` form. Both read with `Type::parse`.
macro_rules! serde_via_parse {
    ($ty:ty) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
        $crate::domain::serde_str::serde_via_parse!(@de $ty);
    };
    ($ty:ty, display) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
        $crate::domain::serde_str::serde_via_parse!(@de $ty);
    };
    (@de $ty:ty) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = <String as serde::Deserialize>::deserialize(deserializer)?;
                <$ty>::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use serde_via_parse;
