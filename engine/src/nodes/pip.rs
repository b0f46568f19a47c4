//! pip, run by the Python that runs ComfyUI: the dry-run plan checked against the protected
//! packages, `pip freeze` for restore points, the install, and putting a frozen set back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::process::run;
use crate::model::normalize_package_name;

/// How long one pip install may take (wheels of large packages are slow to fetch).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(1800);
/// How long the dry run and freeze may take.
const PLAN_TIMEOUT: Duration = Duration::from_secs(600);

/// The Python and the extra flags every `pip install` gets (`NODE_PIP_ARGS`).
#[derive(Clone, Debug)]
pub(crate) struct Pip {
    pub python: PathBuf,
    pub install_args: Vec<String>,
}

/// One package pip would install (or upgrade, or downgrade).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Planned {
    pub name: String,
    pub version: String,
}

/// `pip freeze`: normalised name → the line that reinstalls it (`name==1.0` or `name @ url`).
pub(crate) type Frozen = BTreeMap<String, String>;

/// What one change did to pip's packages: name → (its line before, its line after); `None`
/// where the package was not installed.
pub(crate) type PipChanges = BTreeMap<String, (Option<String>, Option<String>)>;

/// The packages whose line differs between `before` and `after`.
pub(crate) fn changes(before: &Frozen, after: &Frozen) -> PipChanges {
    before
        .keys()
        .chain(after.keys())
        .filter(|name| before.get(*name) != after.get(*name))
        .map(|name| {
            (
                name.clone(),
                (before.get(name).cloned(), after.get(name).cloned()),
            )
        })
        .collect()
}

impl Pip {
    fn args<'a>(&'a self, head: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["-m", "pip"];
        args.extend_from_slice(head);
        args
    }

    /// What `pip install -r requirements` would install, without changing anything.
    pub async fn plan(&self, requirements: &Path, dir: &Path) -> Result<Vec<Planned>, String> {
        let req = requirements.to_string_lossy();
        let mut args = self.args(&[
            "install",
            "--dry-run",
            "--quiet",
            "--report",
            "-",
            "-r",
            req.as_ref(),
        ]);
        args.extend(self.install_args.iter().map(String::as_str));
        let out = run(
            "pip install --dry-run",
            &self.python,
            args,
            Some(dir),
            &[],
            PLAN_TIMEOUT,
        )
        .await?;
        parse_report(&out.stdout)
    }

    /// `pip install -r requirements`.
    pub async fn install_requirements(
        &self,
        requirements: &Path,
        dir: &Path,
    ) -> Result<(), String> {
        let req = requirements.to_string_lossy();
        let mut args = self.args(&["install", "--quiet", "-r", req.as_ref()]);
        args.extend(self.install_args.iter().map(String::as_str));
        run(
            "pip install -r requirements.txt",
            &self.python,
            args,
            Some(dir),
            &[],
            INSTALL_TIMEOUT,
        )
        .await
        .map(|_| ())
    }

    pub async fn freeze(&self) -> Result<Frozen, String> {
        let out = run(
            "pip freeze",
            &self.python,
            self.args(&["freeze", "--all"]),
            None,
            &[],
            PLAN_TIMEOUT,
        )
        .await?;
        Ok(parse_freeze(&out.stdout))
    }

    /// Uninstalls `added` (names) and reinstalls `lines` (`name==1.0`, without dependencies);
    /// says what it did.
    async fn put_back(&self, added: &[&str], lines: &[&str]) -> Result<Vec<String>, String> {
        let mut done = Vec::new();
        if !added.is_empty() {
            let mut args = self.args(&["uninstall", "--yes", "--quiet"]);
            args.extend(added.iter().copied());
            run("pip uninstall", &self.python, args, None, &[], PLAN_TIMEOUT).await?;
            done.push(format!("uninstalled {}", added.join(", ")));
        }
        if !lines.is_empty() {
            let mut args = self.args(&["install", "--quiet", "--no-deps"]);
            args.extend(lines.iter().copied());
            args.extend(self.install_args.iter().map(String::as_str));
            run(
                "pip install (putting back)",
                &self.python,
                args,
                None,
                &[],
                INSTALL_TIMEOUT,
            )
            .await?;
            done.push(format!("reinstalled {}", lines.join(", ")));
        }
        Ok(done)
    }

    /// Puts the environment back to `before`: uninstalls what was added and reinstalls (without
    /// dependencies) every package whose line changed. Returns what it did, in words.
    pub async fn restore(&self, before: &Frozen) -> Result<Vec<String>, String> {
        let now = self.freeze().await?;
        let mut done = Vec::new();
        let added: Vec<&str> = now
            .keys()
            .filter(|name| !before.contains_key(*name))
            .map(String::as_str)
            .collect();
        let changed: Vec<&str> = before
            .iter()
            .filter(|(name, line)| now.get(*name) != Some(line))
            .map(|(_, line)| line.as_str())
            .collect();
        done.extend(self.put_back(&added, &changed).await?);
        let after = self.freeze().await?;
        if &after != before {
            return Err(format!(
                "pip's packages still differ from the restore point: {}",
                describe_difference(before, &after)
            ));
        }
        Ok(done)
    }

    /// Undoes `changes` where they still hold: a package the change added is uninstalled, one
    /// it altered is reinstalled at its old line (without dependencies). A package changed
    /// again since is left as it is, and said so. Returns what it did, in words.
    pub async fn undo(&self, changes: &PipChanges) -> Result<Vec<String>, String> {
        let now = self.freeze().await?;
        let mut done = Vec::new();
        let mut added = Vec::new();
        let mut altered = Vec::new();
        let mut left = Vec::new();
        for (name, (before, after)) in changes {
            if now.get(name) != after.as_ref() {
                left.push(name.as_str());
                continue;
            }
            match before {
                None => added.push(name.as_str()),
                Some(line) => altered.push(line.as_str()),
            }
        }
        done.extend(self.put_back(&added, &altered).await?);
        if !left.is_empty() {
            done.push(format!("left {} (changed since)", left.join(", ")));
        }
        Ok(done)
    }
}

/// The `install` list of pip's JSON installation report.
fn parse_report(stdout: &str) -> Result<Vec<Planned>, String> {
    // `--quiet` keeps pip's own lines out, but a warning may still precede the JSON.
    let start = stdout
        .find('{')
        .ok_or_else(|| "pip's dry run printed no installation report".to_string())?;
    let report: Value = serde_json::from_str(&stdout[start..])
        .map_err(|e| format!("pip's installation report is not JSON: {e}"))?;
    let install = report
        .get("install")
        .and_then(Value::as_array)
        .ok_or_else(|| "pip's installation report has no install list".to_string())?;
    Ok(install
        .iter()
        .filter_map(|item| {
            let meta = item.get("metadata")?;
            Some(Planned {
                name: meta.get("name")?.as_str()?.to_string(),
                version: meta
                    .get("version")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string(),
            })
        })
        .collect())
}

fn parse_freeze(stdout: &str) -> Frozen {
    stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("-e "))
        .filter_map(|line| {
            let name = line
                .split(" @ ")
                .next()
                .and_then(|n| n.split("==").next())?;
            Some((normalize_package_name(name), line.to_string()))
        })
        .collect()
}

/// "added x; removed y; changed z" between two freezes.
pub(crate) fn describe_difference(before: &Frozen, after: &Frozen) -> String {
    let added: Vec<&str> = after
        .keys()
        .filter(|k| !before.contains_key(*k))
        .map(String::as_str)
        .collect();
    let removed: Vec<&str> = before
        .keys()
        .filter(|k| !after.contains_key(*k))
        .map(String::as_str)
        .collect();
    let changed: Vec<&str> = before
        .iter()
        .filter(|(k, v)| after.get(*k).is_some_and(|a| a != *v))
        .map(|(_, v)| v.as_str())
        .collect();
    let mut parts = Vec::new();
    if !added.is_empty() {
        parts.push(format!("added {}", added.join(", ")));
    }
    if !removed.is_empty() {
        parts.push(format!("removed {}", removed.join(", ")));
    }
    if !changed.is_empty() {
        parts.push(format!("changed {}", changed.join(", ")));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join("; ")
    }
}

/// The planned packages that are protected, in words; `None` when the plan touches none.
pub(crate) fn protected_changes(
    plan: &[Planned],
    protected: &[String],
    installed: &Frozen,
) -> Option<String> {
    let hits: Vec<String> = plan
        .iter()
        .filter(|p| protected.contains(&normalize_package_name(&p.name)))
        .map(|p| {
            let now = installed
                .get(&normalize_package_name(&p.name))
                .map(|line| format!(" (installed: {line})"))
                .unwrap_or_else(|| " (not installed now)".to_string());
            format!("{} {}{now}", p.name, p.version)
        })
        .collect();
    (!hits.is_empty()).then(|| hits.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_lists_what_would_be_installed() {
        let report = r#"{"version": "1", "install": [
            {"download_info": {}, "metadata": {"name": "Torch", "version": "2.0.0"}},
            {"metadata": {"name": "tinydep", "version": "1.0"}}
        ]}"#;
        let plan = parse_report(&format!("WARNING: something\n{report}")).unwrap();
        assert_eq!(plan.len(), 2);
        assert_eq!(plan[0].name, "Torch");
        let installed = parse_freeze("torch==1.0.0\npip==23.2\nfoo @ file:///x/foo.whl\n");
        assert_eq!(installed["foo"], "foo @ file:///x/foo.whl");
        let said = protected_changes(&plan, &["torch".into()], &installed).unwrap();
        assert!(
            said.contains("Torch 2.0.0 (installed: torch==1.0.0)"),
            "{said}"
        );
        assert!(protected_changes(&plan[1..], &["torch".into()], &installed).is_none());
    }

    #[test]
    fn differences_are_said_in_words() {
        let a = parse_freeze("a==1\nb==1\n");
        let b = parse_freeze("a==2\nc==1\n");
        assert_eq!(
            describe_difference(&a, &b),
            "added c; removed b; changed a==1"
        );
    }

    #[test]
    fn changes_name_what_was_added_altered_and_removed() {
        let before = parse_freeze("a==1\nb==1\nkeep==1\n");
        let after = parse_freeze("a==2\nc==1\nkeep==1\n");
        let changes = changes(&before, &after);
        assert_eq!(changes.len(), 3, "{changes:?}");
        assert_eq!(changes["a"], (Some("a==1".into()), Some("a==2".into())));
        assert_eq!(changes["b"], (Some("b==1".into()), None));
        assert_eq!(changes["c"], (None, Some("c==1".into())));
    }
}
