//! Who may do what: the role groups the API's handlers check (`Session::require`), defined once here, and
//! what the web UI is told from them in `/api/me`: the pages a user may open, the page they start on, and
//! the names of the groups they belong to. The UI keeps no role lists of its own, so a change here changes
//! the API and the UI together.

use super::Role;

/// Roles that may watch the site: counts, health, alerts, records, watchlists, the live stream.
pub const WATCHERS: &[Role] = &[Role::Admin, Role::Supervisor, Role::Operator];
/// Roles that may read the audit log.
pub const AUDITORS: &[Role] = &[Role::Admin, Role::Supervisor];
/// Administrators only: users, watchlist policies, linking desk staff to an establishment.
pub const ADMINS: &[Role] = &[Role::Admin];
/// Who reviews alerts.
pub const ALERT_REVIEWERS: &[Role] = &[Role::Supervisor, Role::Operator];
/// Who may send a dismissed alert back to review.
pub const ALERT_REOPENERS: &[Role] = &[Role::Supervisor];
/// Who manages watchlist entries.
pub const WATCHLIST_OWNERS: &[Role] = &[Role::Admin, Role::Supervisor];
/// Who may change records.
pub const RECORD_EDITORS: &[Role] = &[Role::Admin, Role::Supervisor];
/// Who may compare a live photo with a record.
pub const RECORD_VERIFIERS: &[Role] = &[
    Role::Admin,
    Role::Supervisor,
    Role::Operator,
    Role::ExamStaff,
];
/// Who manages establishments.
pub const LODGING_MANAGERS: &[Role] = &[Role::Admin, Role::Supervisor];
/// Who may work a desk: the establishment's staff (checked per establishment), supervisors, admins.
pub const LODGING_DESK: &[Role] = &[Role::Admin, Role::Supervisor, Role::LodgingStaff];
/// Who sets exam sessions up and takes manual decisions.
pub const EXAM_ORGANISERS: &[Role] = &[Role::Admin, Role::Supervisor];
/// Who reads exam sessions, checks candidates in and reads reports.
pub const EXAM_STAFF: &[Role] = &[Role::Admin, Role::Supervisor, Role::ExamStaff];
/// Who sets a site's starting occupancy and reset: the people who run the site day to day (a supervisor
/// correcting the morning head count) as well as administrators; every change is audited.
pub const OCCUPANCY_SETTERS: &[Role] = &[Role::Admin, Role::Supervisor];

/// Every group under the name the UI asks for it by (`ctx.can('watchers')`): its constant's name in lower
/// case. A test holds this table to the constants and to the handlers' `require` calls.
pub const GROUPS: &[(&str, &[Role])] = &[
    ("watchers", WATCHERS),
    ("auditors", AUDITORS),
    ("admins", ADMINS),
    ("alert_reviewers", ALERT_REVIEWERS),
    ("alert_reopeners", ALERT_REOPENERS),
    ("watchlist_owners", WATCHLIST_OWNERS),
    ("record_editors", RECORD_EDITORS),
    ("record_verifiers", RECORD_VERIFIERS),
    ("lodging_managers", LODGING_MANAGERS),
    ("lodging_desk", LODGING_DESK),
    ("exam_organisers", EXAM_ORGANISERS),
    ("exam_staff", EXAM_STAFF),
    ("occupancy_setters", OCCUPANCY_SETTERS),
];

/// The web UI's pages in navigation order, each with the groups whose work it shows: a user in any of them
/// may open it, and the page hides the parts their groups may not use.
pub const PAGES: &[(&str, &[&[Role]])] = &[
    ("alerts", &[WATCHERS]),
    ("dashboard", &[WATCHERS]),
    ("watchlists", &[WATCHERS]),
    // Reading records is for watchers (exam staff verify at the exam desk, where they cannot search records).
    ("records", &[WATCHERS]),
    // Watchers search the stays and read the statistics; desk staff check guests in and out.
    ("lodging", &[WATCHERS, LODGING_DESK]),
    ("exams", &[EXAM_STAFF]),
    ("audit", &[AUDITORS]),
    ("users", &[ADMINS]),
];

/// The names of the groups `role` belongs to, in the order of [`GROUPS`].
pub fn groups_of(role: Role) -> Vec<&'static str> {
    GROUPS
        .iter()
        .filter(|(_, roles)| roles.contains(&role))
        .map(|(name, _)| *name)
        .collect()
}

/// The pages `role` may open, in navigation order.
pub fn pages_for(role: Role) -> Vec<&'static str> {
    PAGES
        .iter()
        .filter(|(_, groups)| groups.iter().any(|roles| roles.contains(&role)))
        .map(|(page, _)| *page)
        .collect()
}

/// The page `role` starts on: its everyday work. None for agents, who have no pages.
pub fn home(role: Role) -> Option<&'static str> {
    match role {
        Role::Operator | Role::Supervisor => Some("alerts"),
        Role::Admin => Some("dashboard"),
        Role::LodgingStaff => Some("lodging"),
        Role::ExamStaff => Some("exams"),
        Role::Agent => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The group constants as this file spells them: (name, roles), parsed from the source so that the
    /// served table is checked against what is written, not against itself.
    fn constants_in_source() -> Vec<(String, Vec<Role>)> {
        let src = include_str!("access.rs");
        let src = src.split("#[cfg(test)]").next().unwrap_or(src);
        let mut out = Vec::new();
        for decl in src.split("pub const ").skip(1) {
            let Some((name, rest)) = decl.split_once(": &[Role] = &[") else {
                continue;
            };
            if !name.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                continue;
            }
            let body = rest.split(']').next().unwrap_or_default();
            let roles = body
                .split(',')
                .map(|r| r.trim().trim_start_matches("Role::"))
                .filter(|r| !r.is_empty())
                .map(|r| match r {
                    "Admin" => Role::Admin,
                    "Supervisor" => Role::Supervisor,
                    "Operator" => Role::Operator,
                    "LodgingStaff" => Role::LodgingStaff,
                    "ExamStaff" => Role::ExamStaff,
                    other => panic!("{name}: unknown role {other}"),
                })
                .collect();
            out.push((name.to_string(), roles));
        }
        out
    }

    #[test]
    fn the_served_groups_are_the_constants() {
        let constants = constants_in_source();
        assert!(constants.len() >= 13, "found only {constants:?}");
        let served: Vec<(String, Vec<Role>)> = GROUPS
            .iter()
            .map(|(name, roles)| (name.to_uppercase(), roles.to_vec()))
            .collect();
        assert_eq!(
            served, constants,
            "GROUPS must list every constant, under its own name"
        );
    }

    /// Every `session.require(...)` in the API names one of the served groups, so what the UI is told is
    /// what the handlers check: no role list written in place, no group the UI does not hear of.
    #[test]
    fn every_handler_checks_a_served_group() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
        let mut checked = Vec::new();
        for file in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = file.path();
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let src = std::fs::read_to_string(&path).unwrap();
            let src = src.split("#[cfg(test)]").next().unwrap_or(&src);
            for (at, _) in src.match_indices(".require(") {
                let arg = src[at + ".require(".len()..]
                    .split(')')
                    .next()
                    .unwrap_or_default()
                    .trim();
                let name = arg.rsplit("::").next().unwrap_or(arg);
                let file = path.file_name().unwrap().to_string_lossy();
                assert!(
                    GROUPS.iter().any(|(g, _)| g.to_uppercase() == name),
                    "{file}: require({arg}) is not one of auth::access's groups"
                );
                checked.push(format!("{file}: {name}"));
            }
        }
        assert!(checked.len() > 40, "found only {checked:?}");
    }

    /// What each role is told, as the UI's own tables said before the hub served them.
    #[test]
    fn pages_home_and_groups_per_role() {
        let told = |role| (pages_for(role), home(role), groups_of(role));
        let watcher_pages = ["alerts", "dashboard", "watchlists", "records", "lodging"];
        assert_eq!(
            told(Role::Admin),
            (
                [&watcher_pages[..], &["exams", "audit", "users"]].concat(),
                Some("dashboard"),
                vec![
                    "watchers",
                    "auditors",
                    "admins",
                    "watchlist_owners",
                    "record_editors",
                    "record_verifiers",
                    "lodging_managers",
                    "lodging_desk",
                    "exam_organisers",
                    "exam_staff",
                    "occupancy_setters",
                ],
            )
        );
        assert_eq!(
            told(Role::Supervisor),
            (
                [&watcher_pages[..], &["exams", "audit"]].concat(),
                Some("alerts"),
                vec![
                    "watchers",
                    "auditors",
                    "alert_reviewers",
                    "alert_reopeners",
                    "watchlist_owners",
                    "record_editors",
                    "record_verifiers",
                    "lodging_managers",
                    "lodging_desk",
                    "exam_organisers",
                    "exam_staff",
                    "occupancy_setters",
                ],
            )
        );
        assert_eq!(
            told(Role::Operator),
            (
                watcher_pages.to_vec(),
                Some("alerts"),
                vec!["watchers", "alert_reviewers", "record_verifiers"],
            )
        );
        assert_eq!(
            told(Role::LodgingStaff),
            (vec!["lodging"], Some("lodging"), vec!["lodging_desk"])
        );
        assert_eq!(
            told(Role::ExamStaff),
            (
                vec!["exams"],
                Some("exams"),
                vec!["record_verifiers", "exam_staff"],
            )
        );
        assert_eq!(told(Role::Agent), (vec![], None, vec![]));
    }

    #[test]
    fn every_home_is_one_of_its_pages() {
        for role in [
            Role::Admin,
            Role::Supervisor,
            Role::Operator,
            Role::LodgingStaff,
            Role::ExamStaff,
        ] {
            let start = home(role).unwrap();
            assert!(
                pages_for(role).contains(&start),
                "{role:?} starts on {start}"
            );
        }
    }
}
