//! The queue in Redis, shared by every deck that points at it (`--queue-url`).
//!
//! Each job is a hash; each person's pending jobs a sorted set ordered by priority then age;
//! the people with pending jobs a sorted set walked round-robin from a cursor; running jobs a
//! sorted set of lease deadlines. Every step that reads and then writes is one Lua script,
//! which Redis runs atomically: a claim takes the job out of the line and marks it running
//! with a new fence in one step, so no crash can lose it in between (the gap where a
//! `ZPOPMIN` followed by a separate "mark running" loses jobs). With AOF and
//! `appendfsync always`, what a script wrote is on disk before its answer.

use std::collections::HashMap;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

use super::rules::Settlement;
use super::{JobError, JobPayload, JobRecord, NewJob, WorkerRow};
use crate::model::{JobOutput, JobState, JobView, WorkerHello, WorkerTokenInfo};

const P: &str = "comfydeck:";
/// Job changes and run events, so each deck's browsers see jobs that other decks handle.
const EVENTS_CHANNEL: &str = "comfydeck:events";

#[derive(Clone)]
pub struct RedisQueue {
    client: redis::Client,
    conn: ConnectionManager,
    scripts: std::sync::Arc<Scripts>,
}

struct Scripts {
    submit: Script,
    claim: Script,
    heartbeat: Script,
    settle: Script,
    cancel: Script,
    priority: Script,
    add_output: Script,
}

const SUBMIT: &str = r#"
local p = 'comfydeck:'
local user = ARGV[1]
if redis.call('ZCARD', p..'pending:'..user) >= tonumber(ARGV[2]) then return -1 end
local id = redis.call('INCR', p..'next_id')
local key = p..'job:'..id
redis.call('HSET', key, 'id', id, 'user_id', user, 'username', ARGV[3], 'workflow_name', ARGV[4],
  'workflow_id', ARGV[5], 'payload', ARGV[6], 'models', ARGV[7], 'prompt_id', ARGV[8],
  'state', 'pending', 'priority', ARGV[9], 'attempts', 0, 'fence', 0, 'cancel_requested', 0,
  'created_ms', ARGV[10], 'attempt_errors', '[]', 'outputs', '[]')
redis.call('ZADD', p..'pending:'..user, string.format('%.17g', -tonumber(ARGV[9]) * 1e9 + id), id)
redis.call('ZADD', p..'pending_users', user, user)
redis.call('ZADD', p..'all', id, id)
redis.call('ZADD', p..'user:'..user, id, id)
redis.call('HSET', p..'usernames', user, ARGV[3])
redis.call('HSET', p..'prompts', ARGV[8], id)
return id
"#;

// ARGV: now, lease_ms, max_running (-1: none), any ('1': the worker takes every job), worker,
// the files it has or installs… (`rules::fits` is the rule; this is its Redis side).
const CLAIM: &str = r#"
local p = 'comfydeck:'
local now = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
local max_running = tonumber(ARGV[3])
local any = ARGV[4] == '1'
local worker = ARGV[5]
local have = {}
for i = 6, #ARGV do have[ARGV[i]] = true end
local users = redis.call('ZRANGE', p..'pending_users', 0, -1)
if #users == 0 then return false end
local cursor = tonumber(redis.call('GET', p..'cursor') or '0')
local ordered = {}
for _, u in ipairs(users) do if tonumber(u) > cursor then table.insert(ordered, u) end end
for _, u in ipairs(users) do if tonumber(u) <= cursor then table.insert(ordered, u) end end
for _, u in ipairs(ordered) do
  local room = true
  if max_running >= 0 then
    room = tonumber(redis.call('HGET', p..'running_count', u) or '0') < max_running
  end
  if room then
    for _, id in ipairs(redis.call('ZRANGE', p..'pending:'..u, 0, 199)) do
      local key = p..'job:'..id
      local fits = any
      if tonumber(redis.call('HGET', key, 'retry_at_ms') or '0') > now then
        fits = false
      elseif not fits then
        fits = true
        for _, m in ipairs(cjson.decode(redis.call('HGET', key, 'models') or '[]')) do
          if not have[m] then fits = false break end
        end
      end
      if fits then
        redis.call('ZREM', p..'pending:'..u, id)
        if redis.call('ZCARD', p..'pending:'..u) == 0 then redis.call('ZREM', p..'pending_users', u) end
        local fence = redis.call('HINCRBY', key, 'fence', 1)
        redis.call('HINCRBY', key, 'attempts', 1)
        redis.call('HSET', key, 'state', 'running', 'worker', worker, 'lease_until_ms', now + lease,
          'claimed_ms', now)
        redis.call('HDEL', key, 'retry_at_ms')
        redis.call('HSETNX', key, 'started_ms', now)
        redis.call('ZADD', p..'leases', now + lease, id)
        redis.call('HINCRBY', p..'running_count', u, 1)
        redis.call('SET', p..'cursor', u)
        local created = tonumber(redis.call('HGET', key, 'created_ms'))
        redis.call('ZADD', p..'waits', now, id..':'..fence..':'..(now - created))
        redis.call('ZREMRANGEBYSCORE', p..'waits', '-inf', now - 7200000)
        return {tonumber(id), fence}
      end
    end
  end
end
return false
"#;

// ARGV: id, fence, lease_until. -1: fenced; else the cancel flag.
const HEARTBEAT: &str = r#"
local p = 'comfydeck:'
local key = p..'job:'..ARGV[1]
if redis.call('HGET', key, 'state') ~= 'running' or redis.call('HGET', key, 'fence') ~= ARGV[2] then
  return -1
end
redis.call('HSET', key, 'lease_until_ms', ARGV[3])
redis.call('ZADD', p..'leases', ARGV[3], ARGV[1])
return tonumber(redis.call('HGET', key, 'cancel_requested'))
"#;

// ARGV: id, fence, state, finished_ms, error, attempt_errors, outputs ('' keeps), expired_at (''),
// retry_at ('': at once).
const SETTLE: &str = r#"
local p = 'comfydeck:'
local id = ARGV[1]
local key = p..'job:'..id
if redis.call('HGET', key, 'state') ~= 'running' or redis.call('HGET', key, 'fence') ~= ARGV[2] then
  return 0
end
if ARGV[8] ~= '' and tonumber(redis.call('HGET', key, 'lease_until_ms') or '0') > tonumber(ARGV[8]) then
  return 0
end
local state = ARGV[3]
if state == 'pending' and redis.call('HGET', key, 'cancel_requested') == '1' then state = 'cancelled' end
local user = redis.call('HGET', key, 'user_id')
redis.call('ZREM', p..'leases', id)
redis.call('HINCRBY', p..'running_count', user, -1)
redis.call('HSET', key, 'state', state, 'attempt_errors', ARGV[6])
redis.call('HDEL', key, 'lease_until_ms')
if ARGV[7] ~= '' then redis.call('HSET', key, 'outputs', ARGV[7]) end
if ARGV[5] ~= '' then redis.call('HSET', key, 'error', ARGV[5]) end
if state == 'pending' and ARGV[9] ~= '' then redis.call('HSET', key, 'retry_at_ms', ARGV[9]) end
if state == 'pending' then
  local prio = tonumber(redis.call('HGET', key, 'priority'))
  redis.call('ZADD', p..'pending:'..user, string.format('%.17g', -prio * 1e9 + tonumber(id)), id)
  redis.call('ZADD', p..'pending_users', user, user)
else
  redis.call('HSET', key, 'finished_ms', ARGV[4])
end
return 1
"#;

// ARGV: id, now. The state before (pending answers cancelled), or false.
const CANCEL: &str = r#"
local p = 'comfydeck:'
local key = p..'job:'..ARGV[1]
local state = redis.call('HGET', key, 'state')
if not state then return false end
if state == 'pending' then
  local user = redis.call('HGET', key, 'user_id')
  redis.call('ZREM', p..'pending:'..user, ARGV[1])
  if redis.call('ZCARD', p..'pending:'..user) == 0 then redis.call('ZREM', p..'pending_users', user) end
  redis.call('HSET', key, 'state', 'cancelled', 'finished_ms', ARGV[2], 'cancel_requested', 1)
  return 'cancelled'
end
if state == 'running' then redis.call('HSET', key, 'cancel_requested', 1) end
return state
"#;

// ARGV: id, priority.
const PRIORITY: &str = r#"
local p = 'comfydeck:'
local key = p..'job:'..ARGV[1]
local state = redis.call('HGET', key, 'state')
if not state then return 0 end
redis.call('HSET', key, 'priority', ARGV[2])
if state == 'pending' then
  local user = redis.call('HGET', key, 'user_id')
  redis.call('ZADD', p..'pending:'..user, 'XX',
    string.format('%.17g', -tonumber(ARGV[2]) * 1e9 + tonumber(ARGV[1])), ARGV[1])
end
return 1
"#;

// ARGV: id, fence, name, bytes.
const ADD_OUTPUT: &str = r#"
local p = 'comfydeck:'
local key = p..'job:'..ARGV[1]
if redis.call('HGET', key, 'state') ~= 'running' or redis.call('HGET', key, 'fence') ~= ARGV[2] then
  return 0
end
local kept = {}
for _, o in ipairs(cjson.decode(redis.call('HGET', key, 'outputs') or '[]')) do
  if o.name ~= ARGV[3] then table.insert(kept, o) end
end
table.insert(kept, {name = ARGV[3], bytes = tonumber(ARGV[4])})
redis.call('HSET', key, 'outputs', cjson.encode(kept))
return 1
"#;

fn field<'a>(hash: &'a HashMap<String, String>, name: &str) -> Result<&'a str, JobError> {
    hash.get(name)
        .map(String::as_str)
        .ok_or_else(|| JobError::corrupt(format!("a job in Redis lacks its {name}")))
}

fn number(hash: &HashMap<String, String>, name: &str) -> Result<i64, JobError> {
    field(hash, name)?
        .parse()
        .map_err(|_| JobError::corrupt(format!("a job's {name} in Redis is not a number")))
}

fn optional_number(hash: &HashMap<String, String>, name: &str) -> Option<i64> {
    hash.get(name).and_then(|v| v.parse().ok())
}

fn json<T: serde::de::DeserializeOwned>(
    hash: &HashMap<String, String>,
    name: &str,
) -> Result<T, JobError> {
    let text = field(hash, name)?;
    // Lua's cjson writes an empty table as `{}`.
    let text = if text == "{}" { "[]" } else { text };
    serde_json::from_str(text).map_err(JobError::corrupt)
}

fn read_hash(hash: &HashMap<String, String>) -> Result<JobRecord, JobError> {
    let state = field(hash, "state")?;
    let state = JobState::parse(state)
        .ok_or_else(|| JobError::corrupt(format!("unknown job state {state}")))?;
    let payload: JobPayload =
        serde_json::from_str(field(hash, "payload")?).map_err(JobError::corrupt)?;
    let workflow_id = field(hash, "workflow_id")?;
    Ok(JobRecord {
        view: JobView {
            id: number(hash, "id")?,
            user_id: number(hash, "user_id")?,
            username: field(hash, "username")?.to_string(),
            workflow_name: field(hash, "workflow_name")?.to_string(),
            workflow_id: (!workflow_id.is_empty()).then(|| workflow_id.to_string()),
            state,
            priority: number(hash, "priority")?,
            position: None,
            attempts: number(hash, "attempts")? as u32,
            worker: hash.get("worker").cloned(),
            prompt_id: field(hash, "prompt_id")?.to_string(),
            created_ms: number(hash, "created_ms")?,
            started_ms: optional_number(hash, "started_ms"),
            finished_ms: optional_number(hash, "finished_ms"),
            error: hash.get("error").cloned(),
            attempt_errors: json(hash, "attempt_errors")?,
            outputs: json(hash, "outputs")?,
            required_models: json(hash, "models")?,
            waiting_for: None,
            retry_at_ms: optional_number(hash, "retry_at_ms"),
            cancel_requested: field(hash, "cancel_requested")? == "1",
        },
        payload,
        fence: number(hash, "fence")?,
        lease_until_ms: optional_number(hash, "lease_until_ms"),
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "[]".to_string())
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredWorker {
    name: String,
    gpu: Option<String>,
    vram_mb: Option<u64>,
    models: Vec<String>,
    install_missing: bool,
    #[serde(default)]
    installable: Option<Vec<String>>,
    current_job: Option<i64>,
    last_heartbeat_ms: i64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredToken {
    hash: String,
    created_ms: i64,
    revoked_ms: Option<i64>,
}

impl RedisQueue {
    /// Connects (and reconnects by itself after Redis restarts) to `redis://HOST:PORT/DB`.
    pub async fn connect(url: &str) -> Result<RedisQueue, JobError> {
        let client = redis::Client::open(url)?;
        let conn = ConnectionManager::new(client.clone()).await?;
        Ok(RedisQueue {
            client,
            conn,
            scripts: std::sync::Arc::new(Scripts {
                submit: Script::new(SUBMIT),
                claim: Script::new(CLAIM),
                heartbeat: Script::new(HEARTBEAT),
                settle: Script::new(SETTLE),
                cancel: Script::new(CANCEL),
                priority: Script::new(PRIORITY),
                add_output: Script::new(ADD_OUTPUT),
            }),
        })
    }

    /// Sends one message to every deck on this Redis.
    pub async fn publish_event(&self, message: &str) -> Result<(), JobError> {
        let mut conn = self.conn.clone();
        let _: i64 = conn.publish(EVENTS_CHANNEL, message).await?;
        Ok(())
    }

    /// Hands every message on the decks' channel to `deliver` until the connection drops.
    pub async fn follow_events(&self, mut deliver: impl FnMut(String)) -> Result<(), JobError> {
        use futures_util::StreamExt;
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(EVENTS_CHANNEL).await?;
        let mut messages = pubsub.on_message();
        while let Some(message) = messages.next().await {
            if let Ok(text) = message.get_payload::<String>() {
                deliver(text);
            }
        }
        Ok(())
    }

    pub async fn submit(&self, job: &NewJob, max_pending: u64) -> Result<Option<i64>, JobError> {
        let mut conn = self.conn.clone();
        let id: i64 = self
            .scripts
            .submit
            .arg(job.user_id)
            .arg(max_pending)
            .arg(&job.username)
            .arg(&job.workflow_name)
            .arg(job.workflow_id.as_deref().unwrap_or(""))
            .arg(to_json(&job.payload))
            .arg(to_json(&job.required_models))
            .arg(&job.prompt_id)
            .arg(job.priority)
            .arg(job.created_ms)
            .invoke_async(&mut conn)
            .await?;
        Ok((id >= 0).then_some(id))
    }

    pub async fn claim(
        &self,
        worker: &WorkerHello,
        now_ms: i64,
        lease_ms: i64,
        max_running_per_user: Option<u64>,
    ) -> Result<Option<JobRecord>, JobError> {
        let mut conn = self.conn.clone();
        let mut invocation = self.scripts.claim.prepare_invoke();
        invocation
            .arg(now_ms)
            .arg(lease_ms)
            .arg(max_running_per_user.map_or(-1, |m| m as i64))
            .arg(
                if super::rules::takes_any(worker.install_missing, worker.installable.as_deref()) {
                    "1"
                } else {
                    "0"
                },
            )
            .arg(&worker.name);
        for model in &worker.models {
            invocation.arg(model);
        }
        if worker.install_missing {
            for model in worker.installable.iter().flatten() {
                invocation.arg(model);
            }
        }
        let claimed: Option<(i64, i64)> = invocation.invoke_async(&mut conn).await?;
        match claimed {
            Some((id, _fence)) => self.get(id).await,
            None => Ok(None),
        }
    }

    pub async fn heartbeat(
        &self,
        job_id: i64,
        fence: i64,
        lease_until_ms: i64,
    ) -> Result<bool, JobError> {
        let mut conn = self.conn.clone();
        let answer: i64 = self
            .scripts
            .heartbeat
            .arg(job_id)
            .arg(fence)
            .arg(lease_until_ms)
            .invoke_async(&mut conn)
            .await?;
        match answer {
            -1 => Err(JobError::Fenced(job_id)),
            flag => Ok(flag == 1),
        }
    }

    pub async fn settle(
        &self,
        record: &JobRecord,
        settlement: &Settlement,
        now_ms: i64,
        expired_at_ms: Option<i64>,
    ) -> Result<bool, JobError> {
        let mut conn = self.conn.clone();
        let outputs = match settlement {
            Settlement::Succeed { outputs } => to_json(outputs),
            _ => String::new(),
        };
        let applied: i64 = self
            .scripts
            .settle
            .arg(record.view.id)
            .arg(record.fence)
            .arg(settlement.state().as_str())
            .arg(now_ms)
            .arg(settlement.error().unwrap_or(""))
            .arg(to_json(&settlement.attempt_errors(record)))
            .arg(outputs)
            .arg(expired_at_ms.map(|t| t.to_string()).unwrap_or_default())
            .arg(
                settlement
                    .retry_at_ms(now_ms)
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
            )
            .invoke_async(&mut conn)
            .await?;
        Ok(applied == 1)
    }

    pub async fn cancel(&self, job_id: i64, now_ms: i64) -> Result<Option<JobState>, JobError> {
        let mut conn = self.conn.clone();
        let state: Option<String> = self
            .scripts
            .cancel
            .arg(job_id)
            .arg(now_ms)
            .invoke_async(&mut conn)
            .await?;
        Ok(state.as_deref().and_then(JobState::parse))
    }

    pub async fn set_priority(&self, job_id: i64, priority: i64) -> Result<bool, JobError> {
        let mut conn = self.conn.clone();
        let changed: i64 = self
            .scripts
            .priority
            .arg(job_id)
            .arg(priority)
            .invoke_async(&mut conn)
            .await?;
        Ok(changed == 1)
    }

    pub async fn get(&self, job_id: i64) -> Result<Option<JobRecord>, JobError> {
        let mut conn = self.conn.clone();
        let hash: HashMap<String, String> = conn.hgetall(format!("{P}job:{job_id}")).await?;
        if hash.is_empty() {
            return Ok(None);
        }
        read_hash(&hash).map(Some)
    }

    pub async fn id_of_prompt(&self, prompt_id: &str) -> Result<Option<i64>, JobError> {
        let mut conn = self.conn.clone();
        Ok(conn.hget(format!("{P}prompts"), prompt_id).await?)
    }

    async fn get_many(&self, ids: &[i64]) -> Result<Vec<JobRecord>, JobError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(format!("{P}job:{id}"));
        }
        let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
        hashes
            .iter()
            .filter(|h| !h.is_empty())
            .map(read_hash)
            .collect()
    }

    pub async fn list(
        &self,
        state: Option<JobState>,
        user_id: Option<i64>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, JobError> {
        let mut conn = self.conn.clone();
        let key = match user_id {
            Some(user) => format!("{P}user:{user}"),
            None => format!("{P}all"),
        };
        let mut max = before.map_or("+inf".to_string(), |b| format!("({b}"));
        let mut out = Vec::new();
        // Walk newest first in batches until the page is full (a state filter skips rows).
        loop {
            let ids: Vec<i64> = redis::cmd("ZRANGE")
                .arg(&key)
                .arg(&max)
                .arg("-inf")
                .arg("BYSCORE")
                .arg("REV")
                .arg("LIMIT")
                .arg(0)
                .arg(200)
                .query_async(&mut conn)
                .await?;
            let Some(last) = ids.last().copied() else {
                break;
            };
            for record in self.get_many(&ids).await? {
                if state.is_none_or(|s| record.view.state == s) {
                    out.push(record);
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
            max = format!("({last}");
        }
        Ok(out)
    }

    pub async fn expired(&self, now_ms: i64) -> Result<Vec<JobRecord>, JobError> {
        let mut conn = self.conn.clone();
        let ids: Vec<i64> = conn
            .zrangebyscore(format!("{P}leases"), "-inf", format!("({now_ms}"))
            .await?;
        Ok(self
            .get_many(&ids)
            .await?
            .into_iter()
            .filter(|r| r.view.state == JobState::Running)
            .collect())
    }

    pub async fn pending_lines(&self) -> Result<(i64, Vec<(i64, Vec<i64>)>), JobError> {
        let mut conn = self.conn.clone();
        let cursor: Option<i64> = conn.get(format!("{P}cursor")).await?;
        let users: Vec<i64> = conn.zrange(format!("{P}pending_users"), 0, -1).await?;
        let mut lines = Vec::with_capacity(users.len());
        for user in users {
            let ids: Vec<i64> = conn.zrange(format!("{P}pending:{user}"), 0, -1).await?;
            if !ids.is_empty() {
                lines.push((user, ids));
            }
        }
        Ok((cursor.unwrap_or(0), lines))
    }

    pub async fn counts(&self) -> Result<Vec<(i64, String, u64, u64)>, JobError> {
        let mut conn = self.conn.clone();
        let running: HashMap<i64, i64> = conn.hgetall(format!("{P}running_count")).await?;
        let pending_users: Vec<i64> = conn.zrange(format!("{P}pending_users"), 0, -1).await?;
        let names: HashMap<i64, String> = conn.hgetall(format!("{P}usernames")).await?;
        let mut users: Vec<i64> = pending_users;
        users.extend(running.iter().filter(|(_, n)| **n > 0).map(|(u, _)| *u));
        users.sort_unstable();
        users.dedup();
        let mut out = Vec::with_capacity(users.len());
        for user in users {
            let pending: u64 = conn.zcard(format!("{P}pending:{user}")).await?;
            let running = running.get(&user).copied().unwrap_or(0).max(0) as u64;
            let name = names.get(&user).cloned().unwrap_or_default();
            out.push((user, name, pending, running));
        }
        Ok(out)
    }

    pub async fn waits_since(&self, since_ms: i64) -> Result<Vec<i64>, JobError> {
        let mut conn = self.conn.clone();
        let members: Vec<String> = conn
            .zrangebyscore(format!("{P}waits"), since_ms, "+inf")
            .await?;
        let mut waits: Vec<i64> = members
            .iter()
            .filter_map(|m| m.rsplit(':').next()?.parse().ok())
            .collect();
        waits.sort_unstable();
        Ok(waits)
    }

    pub async fn touch_worker(&self, row: &WorkerRow) -> Result<(), JobError> {
        let mut conn = self.conn.clone();
        let stored = StoredWorker {
            name: row.name.clone(),
            gpu: row.gpu.clone(),
            vram_mb: row.vram_mb,
            models: row.models.clone(),
            install_missing: row.install_missing,
            installable: row.installable.clone(),
            current_job: row.current_job,
            last_heartbeat_ms: row.last_heartbeat_ms,
        };
        let _: () = conn
            .hset(format!("{P}workers"), &row.name, to_json(&stored))
            .await?;
        Ok(())
    }

    pub async fn worker_finished_job(&self, name: &str) -> Result<(), JobError> {
        let mut conn = self.conn.clone();
        let _: i64 = conn.hincr(format!("{P}workers_done"), name, 1).await?;
        Ok(())
    }

    pub async fn workers(&self) -> Result<Vec<WorkerRow>, JobError> {
        let mut conn = self.conn.clone();
        let rows: HashMap<String, String> = conn.hgetall(format!("{P}workers")).await?;
        let done: HashMap<String, u64> = conn.hgetall(format!("{P}workers_done")).await?;
        let mut out: Vec<WorkerRow> = rows
            .values()
            .filter_map(|json| serde_json::from_str::<StoredWorker>(json).ok())
            .map(|w| WorkerRow {
                jobs_done: done.get(&w.name).copied().unwrap_or(0),
                name: w.name,
                gpu: w.gpu,
                vram_mb: w.vram_mb,
                models: w.models,
                install_missing: w.install_missing,
                installable: w.installable,
                current_job: w.current_job,
                last_heartbeat_ms: w.last_heartbeat_ms,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub async fn add_token(&self, name: &str, hash: &str, now_ms: i64) -> Result<bool, JobError> {
        let mut conn = self.conn.clone();
        let stored = StoredToken {
            hash: hash.to_string(),
            created_ms: now_ms,
            revoked_ms: None,
        };
        let added: bool = conn
            .hset_nx(format!("{P}token_info"), name, to_json(&stored))
            .await?;
        if added {
            let _: () = conn.hset(format!("{P}tokens"), hash, name).await?;
        }
        Ok(added)
    }

    pub async fn token_name(&self, hash: &str) -> Result<Option<String>, JobError> {
        let mut conn = self.conn.clone();
        Ok(conn.hget(format!("{P}tokens"), hash).await?)
    }

    pub async fn tokens(&self) -> Result<Vec<WorkerTokenInfo>, JobError> {
        let mut conn = self.conn.clone();
        let rows: HashMap<String, String> = conn.hgetall(format!("{P}token_info")).await?;
        let mut out: Vec<WorkerTokenInfo> = rows
            .into_iter()
            .filter_map(|(name, json)| {
                let t: StoredToken = serde_json::from_str(&json).ok()?;
                Some(WorkerTokenInfo {
                    name,
                    created_ms: t.created_ms,
                    revoked: t.revoked_ms.is_some(),
                })
            })
            .collect();
        out.sort_by(|a, b| (a.created_ms, &a.name).cmp(&(b.created_ms, &b.name)));
        Ok(out)
    }

    pub async fn revoke_token(&self, name: &str, now_ms: i64) -> Result<bool, JobError> {
        let mut conn = self.conn.clone();
        let json: Option<String> = conn.hget(format!("{P}token_info"), name).await?;
        let Some(mut token) = json.and_then(|j| serde_json::from_str::<StoredToken>(&j).ok())
        else {
            return Ok(false);
        };
        if token.revoked_ms.is_some() {
            return Ok(false);
        }
        token.revoked_ms = Some(now_ms);
        // The lookup goes first: from here on the token opens nothing.
        let _: () = conn.hdel(format!("{P}tokens"), &token.hash).await?;
        let _: () = conn
            .hset(format!("{P}token_info"), name, to_json(&token))
            .await?;
        Ok(true)
    }

    pub async fn add_output(
        &self,
        job_id: i64,
        fence: i64,
        output: &JobOutput,
    ) -> Result<bool, JobError> {
        let mut conn = self.conn.clone();
        let applied: i64 = self
            .scripts
            .add_output
            .arg(job_id)
            .arg(fence)
            .arg(&output.name)
            .arg(output.bytes)
            .invoke_async(&mut conn)
            .await?;
        Ok(applied == 1)
    }
}
