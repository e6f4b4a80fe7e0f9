//! The Lua scripts of [`super::RedisProgressStore`]: one per write, each
//! deterministic (the caller passes its stamp) and answering the same when
//! run again for the same call.

/// Replaces the record: the four fields, no reports, fresh TTL. An
/// unpublished completion stays in the completion keys.
pub(super) const INIT: &str = r#"
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('HSET', KEYS[1], 'status', 'INITIALIZING', 'total', 0, 'done', 0, 'errors', 0)
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"#;

/// Lua shared by the two scripts that may cross the finish line.
/// KEYS: hash, items, calls, pending, records.
/// ARGV[4..8]: event_id, completed_at, now_ms, claim_until_ms, project_id —
/// the caller's stamp, so the script stays deterministic.
/// Every answer is {result, status, total, done, errors, duplicate,
/// completed, event_id, completed_at, published, claimed_record}.
macro_rules! finish_line_script {
    ($body:literal) => {
        concat!(
            r#"
local function int(n) return string.format('%d', n) end
local function complete(by, total, done, errors)
  redis.call('HSET', KEYS[1], 'status', 'DONE', 'completed_event_id', ARGV[4],
    'completed_at', ARGV[5], 'completed_by', by, 'completed_published', 0)
  local record = '{"project_id":"' .. ARGV[8] .. '","total":' .. int(total) ..
    ',"done":' .. int(done) .. ',"errors":' .. int(errors) ..
    ',"completed_at":"' .. ARGV[5] .. '"}'
  redis.call('HSET', KEYS[5], ARGV[4], record)
  redis.call('ZADD', KEYS[4], ARGV[7], ARGV[4])
  return record
end
local function recall()
  local id = redis.call('HGET', KEYS[1], 'completed_event_id')
  local due = id and redis.call('ZSCORE', KEYS[4], id)
  -- Lapsed or released; or still held by this very call (a replay of the
  -- step that crossed the line: same event id, same claim).
  if due and (tonumber(due) <= tonumber(ARGV[6]) or
      (id == ARGV[4] and tonumber(due) == tonumber(ARGV[7]))) then
    local record = redis.call('HGET', KEYS[5], id)
    if record then
      redis.call('ZADD', KEYS[4], ARGV[7], id)
      return record
    end
  end
  return ''
end
local function answer(result, status, total, done, errors, duplicate, claimed)
  if not claimed then return {result, status, total, done, errors, duplicate, 0, '', '', 0, ''} end
  local c = redis.call('HMGET', KEYS[1], 'completed_event_id', 'completed_at', 'completed_published')
  return {result, status, total, done, errors, duplicate, 1, c[1] or '', c[2] or '',
    tonumber(c[3] or '0'), claimed}
end
"#,
            $body
        )
    };
}

/// Total and status together, then the finish line. A retry of the request
/// that completed the project (same total and status) answers as it did.
/// ARGV: total, status, ttl, then the stamp.
pub(super) const SET_TOTAL: &str = finish_line_script!(
    r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return answer('NOT_FOUND', '', 0, 0, 0, 0) end
local by = 'total:' .. ARGV[1] .. ':' .. ARGV[2]
local v = redis.call('HMGET', KEYS[1], 'status', 'done', 'errors', 'completed_by', 'total')
local done = tonumber(v[2] or '0')
local errors = tonumber(v[3] or '0')
if v[1] == 'DONE' then
  if v[4] ~= by then return answer('ALREADY_DONE', 'DONE', 0, 0, 0, 0) end
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  return answer('OK', 'DONE', tonumber(v[5] or '0'), done, errors, 0, recall())
end
local total = tonumber(ARGV[1])
local status = ARGV[2]
redis.call('HSET', KEYS[1], 'total', ARGV[1], 'status', status)
local claimed = nil
if total > 0 and done >= total and status ~= 'CRAWLING' then
  status = 'DONE'
  claimed = complete(by, total, done, errors)
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[3])
return answer('OK', status, total, done, errors, 0, claimed)
"#
);

/// Count the report once (its item id, or its call token), then the finish
/// line. A report counted before changes nothing; if it is the one that
/// crossed the line, it is COMPLETED again.
/// ARGV: is_error ('1'/'0'), ttl, 'item' or 'call' with its key, then the
/// stamp (ARGV[4..8] as above: the key is ARGV[9]).
pub(super) const MARK_ITEM_DONE: &str = finish_line_script!(
    r#"
local v = redis.call('HMGET', KEYS[1], 'status', 'total', 'done', 'errors', 'completed_by')
local status = v[1]
if not status then return answer('NOT_FOUND', '', 0, 0, 0, 0) end
local total = tonumber(v[2] or '0')
local done = tonumber(v[3] or '0')
local errors = tonumber(v[4] or '0')
local by = ARGV[3] .. ':' .. ARGV[9]
local reports = KEYS[2]
if ARGV[3] == 'call' then reports = KEYS[3] end
local first = redis.call('SADD', reports, ARGV[9]) == 1
redis.call('EXPIRE', reports, ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[2])
if not first then
  -- A replayed call is the same report, not a duplicate one.
  local duplicate = 0
  if ARGV[3] == 'item' then duplicate = 1 end
  if v[5] == by then
    local claimed = recall()
    return answer('COMPLETED', status, total, done, errors, duplicate, claimed)
  end
  return answer('PROCESSING', status, total, done, errors, duplicate)
end
done = redis.call('HINCRBY', KEYS[1], 'done', 1)
if ARGV[1] == '1' then errors = redis.call('HINCRBY', KEYS[1], 'errors', 1) end
if total > 0 and done >= total and status ~= 'CRAWLING' and status ~= 'DONE' then
  local claimed = complete(by, total, done, errors)
  return answer('COMPLETED', 'DONE', total, done, errors, 0, claimed)
end
return answer('PROCESSING', status, total, done, errors, 0)
"#
);

/// Claims completions whose claim lapsed. KEYS: pending, records.
/// ARGV: now_ms, claim_until_ms, limit. Returns {pending count, ids, records};
/// an id without a record (none is written so) is dropped.
pub(super) const CLAIM_DUE: &str = r#"
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local claimed, records = {}, {}
for _, id in ipairs(ids) do
  local record = redis.call('HGET', KEYS[2], id)
  if record then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    table.insert(claimed, id)
    table.insert(records, record)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return {redis.call('ZCARD', KEYS[1]), claimed, records}
"#;

/// Published: forget the completion, and say so in the project's record if
/// it is still the one that recorded it. KEYS: pending, records, hash.
/// ARGV: event_id.
pub(super) const PUBLISHED: &str = r#"
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('HGET', KEYS[3], 'completed_event_id') == ARGV[1] then
  redis.call('HSET', KEYS[3], 'completed_published', 1)
end
return 1
"#;

/// Not published: due again at `retry_ms`, unless another holder claimed it
/// since. KEYS: pending. ARGV: event_id, held_until_ms, retry_ms.
pub(super) const RELEASE: &str = r#"
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if due and tonumber(due) == tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[1])
  return 1
end
return 0
"#;
