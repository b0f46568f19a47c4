//! Enums whose variants travel by name (JSON, URLs, `data-` attributes, the database). Each
//! name is written once, in `named_enum!`: serde's name, `as_str` and `parse` all come from it.

/// Declares a unit-only enum with a name per variant (`Dark = "dark"`): derives serde with
/// exactly those names, and adds `VARIANTS` (declaration order), `as_str` and `parse`.
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(::serde::Serialize, ::serde::Deserialize)]
        pub enum $name {
            $( $(#[$variant_meta])* #[serde(rename = $text)] $variant ),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const VARIANTS: &'static [$name] = &[$($name::$variant),+];

            /// Its name, as serde writes it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The variant of that name, as serde reads it.
            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

pub(crate) use named_enum;

#[cfg(test)]
mod tests {
    use std::fmt::Debug;

    use serde::de::DeserializeOwned;
    use serde::Serialize;
    use serde_json::{json, Value};

    use crate::model::{
        ActivityKind, GenerationStatus, MediaKind, PromptStyle, Theme, WorkflowSource,
    };

    /// `as_str` is serde's name for every variant, `parse` reads it back, the names are
    /// distinct, and anything else is refused by both.
    fn names_agree<T>(variants: &[T], as_str: fn(T) -> &'static str, parse: fn(&str) -> Option<T>)
    where
        T: Copy + PartialEq + Debug + Serialize + DeserializeOwned,
    {
        assert!(!variants.is_empty());
        for &v in variants {
            let name = as_str(v);
            assert_eq!(serde_json::to_value(v).unwrap(), json!(name), "{v:?}");
            assert_eq!(
                serde_json::from_value::<T>(json!(name)).unwrap(),
                v,
                "{name}"
            );
            assert_eq!(parse(name), Some(v), "{name}");
            assert_eq!(
                variants.iter().filter(|w| as_str(**w) == name).count(),
                1,
                "{name}"
            );
            let upper = name.to_uppercase();
            assert_eq!(parse(&upper), None, "{upper}");
            assert!(serde_json::from_value::<T>(Value::String(upper)).is_err());
        }
        assert_eq!(parse(""), None);
        assert_eq!(parse("no_such_name"), None);
        assert!(serde_json::from_value::<T>(json!("no_such_name")).is_err());
    }

    #[test]
    fn every_named_enum_has_one_name_per_variant_for_serde_as_str_and_parse() {
        names_agree(
            ActivityKind::VARIANTS,
            ActivityKind::as_str,
            ActivityKind::parse,
        );
        names_agree(Theme::VARIANTS, Theme::as_str, Theme::parse);
        names_agree(MediaKind::VARIANTS, MediaKind::as_str, MediaKind::parse);
        names_agree(
            WorkflowSource::VARIANTS,
            WorkflowSource::as_str,
            WorkflowSource::parse,
        );
        names_agree(
            PromptStyle::VARIANTS,
            PromptStyle::as_str,
            PromptStyle::parse,
        );
        names_agree(
            GenerationStatus::VARIANTS,
            GenerationStatus::as_str,
            GenerationStatus::parse,
        );
    }

    #[test]
    fn the_shown_orders_list_every_variant_once() {
        fn same_set<T: PartialEq + Debug>(shown: &[T], all: &[T]) {
            assert_eq!(shown.len(), all.len(), "{shown:?}");
            assert!(all.iter().all(|v| shown.contains(v)), "{shown:?}");
        }
        same_set(&ActivityKind::ALL, ActivityKind::VARIANTS);
        same_set(&Theme::ALL, Theme::VARIANTS);
        same_set(&PromptStyle::ALL, PromptStyle::VARIANTS);
    }

    #[test]
    fn names_are_the_ones_already_stored_and_sent() {
        // Rows in SQLite and values in saved URLs carry these; they must never change.
        assert_eq!(Theme::System.as_str(), "system");
        assert_eq!(ActivityKind::Download.as_str(), "download");
        assert_eq!(WorkflowSource::ComfyUi.as_str(), "comfyui");
        assert_eq!(GenerationStatus::Cancelled.as_str(), "cancelled");
        assert_eq!(MediaKind::Audio.as_str(), "audio");
        assert_eq!(PromptStyle::Cinematic.as_str(), "cinematic");
    }
}
