//! Reading Sidekiq 7+'s execution metrics (see [`crate::sidekiq::metrics`]) in two round trips:
//! every minute hash of the window in both key layouts, then the histograms of the classes that
//! ran in each minute.

use std::collections::BTreeMap;

use redis::Value;

use super::{Reader, RedisError, bytes};
use crate::sidekiq::metrics::{self, ClassTimes, Collector};

impl Reader {
    /// Per-class run counts and slowest runs over the `minutes` before `now` (Unix seconds).
    /// Empty when the Redis holds no metrics (Sidekiq 6, or no job ran in the window).
    pub async fn execution_times(
        &self,
        now: i64,
        minutes: i64,
    ) -> Result<BTreeMap<String, ClassTimes>, RedisError> {
        let window = metrics::recent_minutes(now, minutes);
        if window.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut pipe = redis::pipe();
        for minute in &window {
            pipe.cmd("HGETALL").arg(minute.hash_key());
        }
        let replies = self.replies(self.query(&pipe, window.len()).await?)?;
        let mut collector = Collector::default();
        let mut histograms = Vec::new();
        for (minute, reply) in window.iter().zip(replies) {
            // A key of another type (an unrelated app's) is not Sidekiq's: skip it.
            let Ok(fields) = self.hash(reply, &minute.hash_key())? else {
                continue;
            };
            collector.add_minute(&fields);
            for class in metrics::classes(&fields) {
                histograms.push((class.clone(), minute.histogram_key(&class)));
            }
        }
        if !histograms.is_empty() {
            let mut pipe = redis::pipe();
            for (_, key) in &histograms {
                pipe.cmd("GET").arg(key);
            }
            let replies = self.replies(self.query(&pipe, histograms.len()).await?)?;
            for ((class, _), reply) in histograms.iter().zip(replies) {
                if let Some(raw) = bytes(reply) {
                    collector.add_histogram(class, &raw);
                }
            }
        }
        Ok(collector.finish())
    }

    fn replies(&self, reply: Value) -> Result<Vec<Value>, RedisError> {
        match reply {
            Value::Array(items) => Ok(items),
            other => Err(self.protocol("the metrics pipeline", &other)),
        }
    }
}
