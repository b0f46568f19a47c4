//! `comfydeck users add|list|passwd|disable|enable|remove`: accounts from the command line.
//! They write through the workspace's SQLite, so they work while a server holds it; the
//! server sees each change at its next request (a disabled user's next click is refused).

use std::io::BufRead;

use anyhow::Context;
use engine::auth::UsersService;
use engine::model::{format_utc, Role, UserInfo};

use super::ExitCode;
use crate::cli::UsersAction;

pub async fn users(action: UsersAction) -> anyhow::Result<ExitCode> {
    let mut config = action.common().to_config().map_err(anyhow::Error::msg)?;
    // The server's admin password may come from ACCESS_PASSWORD; so does the refusal to change
    // it here when this shell has it too.
    config.access_password = std::env::var("ACCESS_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty())
        .map(engine::secret::Secret::new);
    let users: UsersService = engine::open_users(&config)
        .await
        .context("cannot open the workspace's accounts")?;
    let actor = users.local_admin().await?;
    match action {
        UsersAction::Add {
            name,
            admin,
            password_stdin,
            ..
        } => {
            let role = if admin { Role::Admin } else { Role::User };
            let password = password_stdin.then(read_password).transpose()?;
            let given = password.is_some();
            let added = users.add(&actor, &name, role, password).await?;
            out!(
                "Added {} ({}).",
                added.user.username,
                added.user.role.label().to_lowercase()
            );
            if !given {
                out!("Password (shown once): {}", added.password);
            }
            Ok(0)
        }
        UsersAction::List { json, .. } => {
            let list = users.list(&actor).await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print_table(&list);
            }
            Ok(0)
        }
        UsersAction::Passwd {
            name,
            password_stdin,
            ..
        } => {
            let password = password_stdin.then(read_password).transpose()?;
            let given = password.is_some();
            let reset = users.reset_password(&actor, &name, password).await?;
            out!(
                "New password set for {}; their sessions ended.",
                reset.user.username
            );
            if !given {
                out!("Password (shown once): {}", reset.password);
            }
            Ok(0)
        }
        UsersAction::Disable { name, .. } => {
            let user = users.set_disabled(&actor, &name, true).await?;
            out!(
                "Disabled {}: their sessions ended and their API tokens stop working until enabled.",
                user.username
            );
            Ok(0)
        }
        UsersAction::Enable { name, .. } => {
            let user = users.set_disabled(&actor, &name, false).await?;
            out!("Enabled {}.", user.username);
            Ok(0)
        }
        UsersAction::Remove { name, .. } => {
            users.remove(&actor, &name).await?;
            out!(
                "Removed {}: sessions ended, API tokens revoked, outputs now belong to admin.",
                name.trim().to_ascii_lowercase()
            );
            Ok(0)
        }
    }
}

/// The first line of standard input, without its line ending.
fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        anyhow::bail!("--password-stdin: standard input held no password");
    }
    Ok(password)
}

fn print_table(users: &[UserInfo]) {
    let width = users
        .iter()
        .map(|u| u.username.len())
        .max()
        .unwrap_or(4)
        .max(4);
    out!(
        "{:<width$}  {:<5}  {:<8}  {:<20}  LAST LOGIN",
        "NAME",
        "ROLE",
        "STATE",
        "CREATED"
    );
    for user in users {
        let state = if user.disabled {
            "disabled"
        } else if !user.has_password {
            "no login"
        } else {
            "active"
        };
        out!(
            "{:<width$}  {:<5}  {:<8}  {:<20}  {}",
            user.username,
            user.role.as_str(),
            state,
            format_utc(user.created_ms),
            user.last_login_ms
                .map(format_utc)
                .unwrap_or_else(|| "never".into())
        );
    }
}
