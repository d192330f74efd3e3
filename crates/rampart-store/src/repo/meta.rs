use crate::db::{Val, sql};
use crate::{StoreError, Tx};

impl Tx {
    /// A deployment-wide setting (e.g. the system tenant's id, the root key's check value).
    pub async fn get_meta(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        self.fetch_optional(
            &sql!("SELECT value FROM meta WHERE key = $1"),
            &[Val::Text(key)],
        )
        .await?
        .map(|r| r.text("value"))
        .transpose()
    }

    /// Sets `key` unless it is already set; `true` when this call set it. Settings are
    /// write-once.
    pub async fn insert_meta(&mut self, key: &str, value: &str) -> Result<bool, StoreError> {
        Ok(self
            .execute(
                &sql!("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING"),
                &[Val::Text(key), Val::Text(value)],
            )
            .await?
            == 1)
    }
}
