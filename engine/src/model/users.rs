//! People on the deck: accounts, roles and who is asking.

use serde::{Deserialize, Serialize};

use super::named::named_enum;
use super::settings::Theme;

named_enum! {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum Role {
        Admin = "admin",
        User = "user",
    }
}

impl Role {
    pub fn label(self) -> &'static str {
        match self {
            Role::Admin => "Administrator",
            Role::User => "User",
        }
    }
}

/// The account every deck has: earlier versions' one password became its password, open mode
/// acts as it, and a removed user's outputs pass to it. It cannot be removed, disabled or
/// demoted.
pub const ADMIN_USERNAME: &str = "admin";
pub const MAX_USERNAME_CHARS: usize = 32;
pub const MIN_PASSWORD_CHARS: usize = 8;

/// A username as stored (lower-cased), or a sentence saying what is wrong with it.
pub fn normalize_username(name: &str) -> Result<String, String> {
    let name = name.trim().to_ascii_lowercase();
    if name.is_empty() || name.chars().count() > MAX_USERNAME_CHARS {
        return Err(format!(
            "a username has 1 to {MAX_USERNAME_CHARS} characters"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "a username may use only a-z, 0-9, _ . and -; {bad:?} is not allowed"
        ));
    }
    Ok(name)
}

/// A new password is long enough, or the sentence saying it is not.
pub fn check_new_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "a password needs at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    Ok(())
}

/// Who is making a request: resolved from the session or API token by the auth layer, and what
/// every service checks ownership and roles against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    /// Their theme (`None`: the deck's), so the first paint needs no second lookup.
    #[serde(default)]
    pub theme: Option<Theme>,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether this caller may see or change something owned by `owner_id`.
    pub fn may_access(&self, owner_id: i64) -> bool {
        self.is_admin() || self.user_id == owner_id
    }
}

/// An account as lists show it: never its password hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserInfo {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub created_ms: i64,
    pub last_login_ms: Option<i64>,
    pub disabled: bool,
    /// `None` follows the deck's theme.
    pub theme: Option<Theme>,
    /// Whether a password is set (open mode's admin may have none).
    pub has_password: bool,
}

/// A user just added, or a password just reset: the only time the password is shown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserWithPassword {
    pub user: UserInfo,
    pub password: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lowercased_and_checked() {
        assert_eq!(normalize_username(" Alice ").unwrap(), "alice");
        assert_eq!(normalize_username("a.b-c_9").unwrap(), "a.b-c_9");
        assert!(normalize_username("").unwrap_err().contains("1 to 32"));
        assert!(normalize_username(&"x".repeat(33)).is_err());
        assert!(normalize_username(&"x".repeat(32)).is_ok());
        let err = normalize_username("al ice").unwrap_err();
        assert!(err.contains("' '"), "{err}");
        assert!(normalize_username("bob/..").is_err());
        assert!(normalize_username("émile").is_err());
    }

    #[test]
    fn passwords_need_eight_characters() {
        assert!(check_new_password("1234567").is_err());
        assert!(check_new_password("12345678").is_ok());
    }

    #[test]
    fn callers_reach_their_own_things_and_admins_everything() {
        let alice = Caller {
            user_id: 2,
            username: "alice".into(),
            role: Role::User,
            theme: None,
        };
        let admin = Caller {
            user_id: 1,
            username: "admin".into(),
            role: Role::Admin,
            theme: None,
        };
        assert!(alice.may_access(2));
        assert!(!alice.may_access(3));
        assert!(admin.may_access(3));
    }
}
