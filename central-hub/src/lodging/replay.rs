//! Check-ins a desk recorded offline (a bus on the road) and sends when the network returns. The browser names
//! each with a random `client_id`; sending one again, because the answer to the first try was lost, returns the
//! stay the first try made instead of a second one or a conflict. The time the desk recorded it becomes the
//! check-in time, within bounds: a phone's clock may be wrong, and a queue cannot be older than a few days.

use super::{Establishment, Guest, LodgingError, Stay};
use crate::db::Db;

/// How old a queued check-in may be when it arrives.
pub const MAX_QUEUED_MS: i64 = 7 * 24 * 3600 * 1000;
/// How far ahead of the hub's clock a desk's clock may run.
pub const MAX_CLOCK_AHEAD_MS: i64 = 5 * 60 * 1000;

/// 8-64 characters of `A-Z a-z 0-9 -` (a UUID fits).
pub fn check_client_id(id: &str) -> Result<(), LodgingError> {
    let ok =
        (8..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(LodgingError::Invalid(
            "client_id must be 8-64 letters, digits or '-'".into(),
        ))
    }
}

/// The check-in time for a check-in the desk recorded at `recorded_ms` (None: now).
pub fn checkin_time(recorded_ms: Option<i64>, now: i64) -> Result<i64, LodgingError> {
    let Some(at) = recorded_ms else {
        return Ok(now);
    };
    if at > now + MAX_CLOCK_AHEAD_MS {
        return Err(LodgingError::Invalid(
            "recorded_ms is in the future: check the device's clock".into(),
        ));
    }
    if at < now - MAX_QUEUED_MS {
        return Err(LodgingError::Invalid(
            "recorded_ms is more than 7 days old: register the guest again".into(),
        ));
    }
    Ok(at.min(now))
}

/// The stay an earlier try with this `client_id` made, if any.
pub async fn stay_by_client_id(db: &Db, client_id: &str) -> Result<Option<Stay>, LodgingError> {
    let id: Option<String> =
        sqlx::query_scalar("SELECT id FROM lodging_stays WHERE client_id = $1")
            .bind(client_id)
            .fetch_optional(&db.pool)
            .await?;
    match id {
        Some(id) => super::stay(db, &id).await,
        None => Ok(None),
    }
}

/// An earlier stay found by `client_id` answers this try only if it is the same guest at the same place: an id
/// reused for another check-in is a client's bug, refused rather than silently merged.
pub fn same_check_in(stay: &Stay, est: &Establishment, guest: &Guest) -> Result<(), LodgingError> {
    if stay.establishment_id == est.id
        && stay.cccd == guest.cccd
        && stay.passport_number == guest.passport_number
    {
        Ok(())
    } else {
        Err(LodgingError::Conflict {
            code: "client_id_reused",
            message: "this client_id was used for another check-in".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids() {
        assert!(check_client_id("0192c0de-6f2a-7c55-a1b4-1234567890ab").is_ok());
        for bad in [
            "",
            "short",
            "has space here",
            "x'; DROP TABLE",
            &"a".repeat(65),
        ] {
            assert!(check_client_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn recorded_times_are_bounded() {
        let now = 1_800_000_000_000;
        assert_eq!(checkin_time(None, now).unwrap(), now);
        assert_eq!(
            checkin_time(Some(now - 3_600_000), now).unwrap(),
            now - 3_600_000
        );
        // A clock a little ahead is taken as now; far ahead, or a week old, is refused.
        assert_eq!(checkin_time(Some(now + 60_000), now).unwrap(), now);
        assert!(checkin_time(Some(now + MAX_CLOCK_AHEAD_MS + 1), now).is_err());
        assert!(checkin_time(Some(now - MAX_QUEUED_MS - 1), now).is_err());
    }
}
