-- Portico rate-limit, one atomic step per request: the algorithms of algo.rs, on Redis's clock
-- (TIME, so every gateway node agrees on window boundaries whatever its own clock says).
-- KEYS[1]: the limiter key. ARGV: limit, window (µs), algorithm (fixed | sliding | bucket).
-- Returns { allowed (0|1), remaining, reset_us, retry_us }.
-- Numbers written back go through string.format('%d'): Lua would print a µs timestamp in
-- %.14g and lose its last digits.
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local w = tonumber(ARGV[2])
local algo = ARGV[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function ms(us) return math.floor(us / 1000) + 1000 end

if algo == 'fixed' then
  local idx = math.floor(now / w)
  local v = redis.call('HMGET', key, 'i', 'c')
  local c = 0
  if tonumber(v[1]) == idx then c = tonumber(v[2]) or 0 end
  local reset = (idx + 1) * w - now
  if c >= limit then return { 0, 0, reset, reset } end
  c = c + 1
  redis.call('HSET', key, 'i', string.format('%d', idx), 'c', c)
  redis.call('PEXPIRE', key, ms(reset))
  return { 1, limit - c, reset, 0 }
elseif algo == 'sliding' then
  local idx = math.floor(now / w)
  local elapsed = now - idx * w
  local v = redis.call('HMGET', key, 'i', 'c', 'p')
  local si = tonumber(v[1])
  local curr, prev = 0, 0
  if si == idx then
    curr, prev = tonumber(v[2]) or 0, tonumber(v[3]) or 0
  elseif si == idx - 1 then
    prev = tonumber(v[2]) or 0
  end
  local reset = w - elapsed
  local est = prev * (w - elapsed) / w + curr
  if est + 1 > limit then
    local retry
    if curr + 1 <= limit and prev > 0 then
      retry = math.max(w * (1 - (limit - curr - 1) / prev) - elapsed, 1)
    else
      local e = 0
      if curr > 0 then e = math.max(w * (1 - (limit - 1) / curr), 0) end
      retry = w - elapsed + e
    end
    return { 0, 0, reset, math.ceil(retry) }
  end
  curr = curr + 1
  redis.call('HSET', key, 'i', string.format('%d', idx), 'c', curr, 'p', prev)
  redis.call('PEXPIRE', key, ms(reset + w))
  return { 1, math.max(math.floor(limit - est - 1), 0), reset, 0 }
else
  local interval = math.max(math.floor(w / limit), 1)
  local tau = math.max(w - interval, 0)
  local tat = math.max(tonumber(redis.call('GET', key)) or now, now)
  if tat - now > tau then return { 0, 0, tat - now, tat - now - tau } end
  tat = tat + interval
  redis.call('SET', key, string.format('%d', tat), 'PX', ms(tat - now))
  return { 1, math.floor(math.max(w - (tat - now), 0) / interval), tat - now, 0 }
end
