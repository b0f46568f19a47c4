//! The catalog filters: what the URL query holds, which presets they let through, and the
//! values their menus offer.

use std::collections::BTreeSet;

use engine::model::*;
use leptos_router::params::ParamsMap;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum InstalledFilter {
    #[default]
    All,
    Installed,
    NotInstalled,
    InProgress,
}

impl InstalledFilter {
    pub(super) const ALL: [InstalledFilter; 4] = [
        InstalledFilter::All,
        InstalledFilter::Installed,
        InstalledFilter::NotInstalled,
        InstalledFilter::InProgress,
    ];

    pub(super) fn as_str(self) -> &'static str {
        match self {
            InstalledFilter::All => "",
            InstalledFilter::Installed => "installed",
            InstalledFilter::NotInstalled => "not_installed",
            InstalledFilter::InProgress => "in_progress",
        }
    }

    pub(super) fn label(self) -> &'static str {
        match self {
            InstalledFilter::All => "Installed or not",
            InstalledFilter::Installed => "Installed",
            InstalledFilter::NotInstalled => "Not installed",
            InstalledFilter::InProgress => "In progress",
        }
    }

    pub(super) fn parse(s: &str) -> InstalledFilter {
        InstalledFilter::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .unwrap_or_default()
    }

    pub(super) fn matches(self, state: InstallState) -> bool {
        let in_progress = matches!(
            state,
            InstallState::Queued | InstallState::Downloading | InstallState::Paused
        );
        match self {
            InstalledFilter::All => true,
            InstalledFilter::Installed => state.is_installed(),
            InstalledFilter::InProgress => in_progress,
            InstalledFilter::NotInstalled => !state.is_installed() && !in_progress,
        }
    }
}

/// How many matching presets the page lists at first, and how many each "Show more" adds.
/// Rendering the whole catalog made the page several hundred kB and most of its server time,
/// for far more cards than a phone's screen shows.
pub(super) const PAGE: usize = 12;

/// How many matching presets the URL asks the page to list (`shown=`; never less than a page).
pub(super) fn shown_from_query(query: &ParamsMap) -> usize {
    query
        .get("shown")
        .and_then(|n| n.trim().parse::<usize>().ok())
        .map_or(PAGE, |n| n.max(PAGE))
}

/// The catalog filters, as the URL query holds them:
/// `?q=flux&category=…&type=image&tag=fp8&installed=installed&fits=1`. A change of filters
/// starts again at the first page (their URL has no `shown=`).
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Filters {
    pub(super) q: String,
    pub(super) category: String,
    pub(super) kind: String,
    pub(super) tag: String,
    pub(super) installed: InstalledFilter,
    pub(super) fits: bool,
}

impl Filters {
    pub(super) fn from_query(query: &ParamsMap) -> Filters {
        let get = |key: &str| query.get(key).unwrap_or_default();
        Filters {
            q: get("q"),
            category: get("category"),
            kind: get("type"),
            tag: get("tag"),
            installed: InstalledFilter::parse(&get("installed")),
            fits: matches!(get("fits").as_str(), "1" | "true" | "yes"),
        }
    }

    pub(super) fn is_default(&self) -> bool {
        *self == Filters::default()
    }

    pub(super) fn to_url(&self) -> String {
        self.url(String::new())
    }

    /// The same filters, listing the first `shown` matches.
    pub(super) fn to_url_showing(&self, shown: usize) -> String {
        self.url(if shown > PAGE {
            shown.to_string()
        } else {
            String::new()
        })
    }

    fn url(&self, shown: String) -> String {
        let fits = if self.fits { "1" } else { "" };
        let params: Vec<String> = [
            ("q", self.q.as_str()),
            ("category", self.category.as_str()),
            ("type", self.kind.as_str()),
            ("tag", self.tag.as_str()),
            ("installed", self.installed.as_str()),
            ("fits", fits),
            ("shown", shown.as_str()),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode_component(v)))
        .collect();
        if params.is_empty() {
            "/models".to_string()
        } else {
            format!("/models?{}", params.join("&"))
        }
    }

    pub(super) fn matches(&self, p: &PresetView, gpu_known: bool) -> bool {
        (self.category.is_empty() || p.category == self.category)
            && (self.kind.is_empty() || p.kind == self.kind)
            && (self.tag.is_empty() || p.tags.contains(&self.tag))
            && self.installed.matches(p.state)
            && (!self.fits || !gpu_known || matches!(p.vram_fit, VramFit::Fits | VramFit::Tight))
            && matches_search(p, &self.q)
    }
}

/// Every word must appear in the name, id, aliases, tags, description, use case, category or
/// type (case-insensitive).
fn matches_search(p: &PresetView, q: &str) -> bool {
    let words: Vec<String> = q.split_whitespace().map(str::to_lowercase).collect();
    if words.is_empty() {
        return true;
    }
    let mut hay = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        p.name,
        p.id,
        p.description,
        p.use_case.as_deref().unwrap_or(""),
        p.category,
        p.kind
    );
    for extra in p.aliases.iter().chain(&p.tags) {
        hay.push('\n');
        hay.push_str(extra);
    }
    let hay = hay.to_lowercase();
    words.iter().all(|w| hay.contains(w.as_str()))
}

/// The values the filter menus offer, from the catalog.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct FilterOptions {
    pub(super) categories: Vec<String>,
    pub(super) kinds: Vec<String>,
    pub(super) tags: Vec<String>,
}

impl FilterOptions {
    pub(super) fn of(presets: &[PresetView]) -> FilterOptions {
        let unique = |items: &mut dyn Iterator<Item = &String>| -> Vec<String> {
            items
                .filter(|s| !s.is_empty())
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        FilterOptions {
            categories: unique(&mut presets.iter().map(|p| &p.category)),
            kinds: unique(&mut presets.iter().map(|p| &p.kind)),
            tags: unique(&mut presets.iter().flat_map(|p| p.tags.iter())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preset(id: &str, state: InstallState) -> PresetView {
        PresetView {
            id: id.into(),
            aliases: vec![id.to_uppercase().replace('-', "_")],
            name: format!("Preset {id}"),
            category: "Image Generation".into(),
            kind: "image".into(),
            description: "A test preset".into(),
            use_case: None,
            tags: vec!["fp8".into(), "flux".into()],
            version: None,
            download_bytes: Some(10),
            remaining_bytes: 10,
            vram_gb: Some(12.0),
            vram_fit: VramFit::Fits,
            state,
            files: vec![],
            layer: "builtin".into(),
            error: None,
        }
    }

    #[test]
    fn search_looks_at_names_ids_aliases_and_tags() {
        let p = preset("e2e-tiny", InstallState::NotInstalled);
        assert!(matches_search(&p, "e2e"));
        assert!(matches_search(&p, "E2E_TINY"));
        assert!(matches_search(&p, "flux test"));
        assert!(!matches_search(&p, "flux video"));
        assert!(matches_search(&p, "  "));
    }

    #[test]
    fn filters_round_trip_through_the_url() {
        let f = Filters {
            q: "a b&c".into(),
            category: "Image Generation".into(),
            kind: "image".into(),
            tag: String::new(),
            installed: InstalledFilter::InProgress,
            fits: true,
        };
        assert_eq!(
            f.to_url(),
            "/models?q=a%20b%26c&category=Image%20Generation&type=image&installed=in_progress&fits=1"
        );
        assert_eq!(Filters::default().to_url(), "/models");
        assert_eq!(f.to_url_showing(PAGE), f.to_url());
        assert_eq!(
            Filters::default().to_url_showing(3 * PAGE),
            format!("/models?shown={}", 3 * PAGE)
        );
    }

    #[test]
    fn shown_is_at_least_a_page() {
        let query = |q: &str| {
            let mut map = ParamsMap::new();
            map.insert("shown", q.to_string());
            map
        };
        assert_eq!(shown_from_query(&ParamsMap::new()), PAGE);
        assert_eq!(shown_from_query(&query("40")), 40);
        assert_eq!(shown_from_query(&query("1")), PAGE);
        assert_eq!(shown_from_query(&query("lots")), PAGE);
        assert_eq!(shown_from_query(&query("-5")), PAGE);
    }

    #[test]
    fn install_filter_groups_states() {
        assert!(InstalledFilter::Installed.matches(InstallState::UpdateAvailable));
        assert!(InstalledFilter::InProgress.matches(InstallState::Paused));
        assert!(InstalledFilter::NotInstalled.matches(InstallState::Partial));
        assert!(!InstalledFilter::NotInstalled.matches(InstallState::Downloading));
    }

    #[test]
    fn fits_filter_is_ignored_without_a_gpu() {
        let mut p = preset("x", InstallState::NotInstalled);
        p.vram_fit = VramFit::TooBig;
        let f = Filters {
            fits: true,
            ..Default::default()
        };
        assert!(!f.matches(&p, true));
        assert!(f.matches(&p, false));
    }
}
