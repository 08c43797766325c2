/**
 * The Redis directory's Lua scripts: every operation is one script, one round trip, atomic on the
 * server. Four keys under one prefix, all in one Redis Cluster hash slot with the default
 * `{relay}:` (the braces are the hash tag), given to every script in this order:
 *
 * - KEYS[1] `tunnels`: hash `hostId|owner` -> JSON `{tunnelId, instanceId, connectedAt, internalUrl}`
 * - KEYS[2] `owners`: hash `hostId` -> the owners holding it, `|`-separated
 * - KEYS[3] `instances`: hash `hostId` -> the agent instance its tunnels belong to
 * - KEYS[4] `ttl`: sorted set `hostId|owner` -> expiry (ms)
 *
 * (A hostId is `[A-Za-z0-9._-:]`, an owner `{region}:{machineId}`: neither holds a `|`.)
 */

const HELPERS = `
local SEP = '|'
local function ownersOf(hostId)
  local list = redis.call('HGET', KEYS[2], hostId)
  local out = {}
  if list then for o in string.gmatch(list, '[^|]+') do out[#out + 1] = o end end
  return out
end
local function setOwners(hostId, owners)
  if #owners == 0 then
    redis.call('HDEL', KEYS[2], hostId)
    redis.call('HDEL', KEYS[3], hostId)
  else
    redis.call('HSET', KEYS[2], hostId, table.concat(owners, SEP))
  end
end
local function addOwner(hostId, owner)
  local owners = ownersOf(hostId)
  for _, o in ipairs(owners) do if o == owner then return end end
  owners[#owners + 1] = owner
  setOwners(hostId, owners)
end
local function dropOwner(hostId, owner)
  local field = hostId .. SEP .. owner
  redis.call('HDEL', KEYS[1], field)
  redis.call('ZREM', KEYS[4], field)
  local kept = {}
  for _, o in ipairs(ownersOf(hostId)) do if o ~= owner then kept[#kept + 1] = o end end
  setOwners(hostId, kept)
end
local function tunnelOf(meta)
  local ok, decoded = pcall(cjson.decode, meta)
  if ok and type(decoded) == 'table' then return decoded.tunnelId end
  return nil
end
local function write(hostId, owner, meta, instanceId, expiresAt)
  local field = hostId .. SEP .. owner
  redis.call('HSET', KEYS[3], hostId, instanceId)
  redis.call('HSET', KEYS[1], field, meta)
  redis.call('ZADD', KEYS[4], expiresAt, field)
  addOwner(hostId, owner)
end
`

/**
 * ARGV: hostId, owner, meta, instanceId, expiresAt, channel, event. The entries of an older
 * instance go first; returns them as a flat list owner, meta, owner, meta...
 */
export const REGISTER = HELPERS + `
local hostId, owner = ARGV[1], ARGV[2]
local current = redis.call('HGET', KEYS[3], hostId)
local replaced = {}
if current and current ~= ARGV[4] then
  for _, o in ipairs(ownersOf(hostId)) do
    local field = hostId .. SEP .. o
    replaced[#replaced + 1] = o
    replaced[#replaced + 1] = redis.call('HGET', KEYS[1], field) or ''
    redis.call('HDEL', KEYS[1], field)
    redis.call('ZREM', KEYS[4], field)
  end
  redis.call('HDEL', KEYS[2], hostId)
end
write(hostId, owner, ARGV[3], ARGV[4], ARGV[5])
redis.call('PUBLISH', ARGV[6], ARGV[7])
return replaced`

/** ARGV: hostId, owner, tunnelId. 1 when deleted, 0 when the entry is another tunnel's (or gone). */
export const UNREGISTER = HELPERS + `
local meta = redis.call('HGET', KEYS[1], ARGV[1] .. SEP .. ARGV[2])
if not meta then return 0 end
local tunnelId = tunnelOf(meta)
if tunnelId and tunnelId ~= ARGV[3] then return 0 end
dropOwner(ARGV[1], ARGV[2])
return 1`

/**
 * ARGV: hostId, owner, tunnelId, meta, instanceId, expiresAt, channel, event. 1 extended, 2 restored
 * (and published), 0 replaced (another tunnel, or another instance, holds the host now).
 */
export const HEARTBEAT = HELPERS + `
local field = ARGV[1] .. SEP .. ARGV[2]
local meta = redis.call('HGET', KEYS[1], field)
if meta then
  local tunnelId = tunnelOf(meta)
  if tunnelId and tunnelId ~= ARGV[3] then return 0 end
  redis.call('ZADD', KEYS[4], ARGV[6], field)
  return 1
end
local current = redis.call('HGET', KEYS[3], ARGV[1])
if current and current ~= ARGV[5] then return 0 end
write(ARGV[1], ARGV[2], ARGV[4], ARGV[5], ARGV[6])
redis.call('PUBLISH', ARGV[7], ARGV[8])
return 2`

/** ARGV: hostId, now. Every live entry as a flat list owner, meta, owner, meta... */
export const LOOKUP = HELPERS + `
local out = {}
for _, o in ipairs(ownersOf(ARGV[1])) do
  local field = ARGV[1] .. SEP .. o
  local expires = redis.call('ZSCORE', KEYS[4], field)
  if (not expires) or tonumber(expires) > tonumber(ARGV[2]) then
    local meta = redis.call('HGET', KEYS[1], field)
    if meta then
      out[#out + 1] = o
      out[#out + 1] = meta
    end
  end
end
return out`

/**
 * Deletes `fields` (hostId|owner) from the tunnels hash and the ttl set, and each owner from its
 * host's list, in batches of 1,000 (a Lua unpack of ~20,000 arguments fails; and a call per field
 * would cost more than the work).
 */
const DELETE_ALL = `
local function deleteAll(fields)
  local hosts, removed = {}, {}
  for _, field in ipairs(fields) do
    local bar = string.find(field, SEP, 1, true)
    local hostId, owner = string.sub(field, 1, bar - 1), string.sub(field, bar + 1)
    if not removed[hostId] then
      removed[hostId] = {}
      hosts[#hosts + 1] = hostId
    end
    removed[hostId][owner] = true
  end
  for i = 1, #fields, 1000 do
    local chunk = { unpack(fields, i, math.min(i + 999, #fields)) }
    redis.call('HDEL', KEYS[1], unpack(chunk))
    redis.call('ZREM', KEYS[4], unpack(chunk))
  end
  for i = 1, #hosts, 1000 do
    local chunk = { unpack(hosts, i, math.min(i + 999, #hosts)) }
    local lists = redis.call('HMGET', KEYS[2], unpack(chunk))
    local sets, gone = {}, {}
    for j, hostId in ipairs(chunk) do
      local kept = {}
      if lists[j] then
        for o in string.gmatch(lists[j], '[^|]+') do
          if not removed[hostId][o] then kept[#kept + 1] = o end
        end
      end
      if #kept == 0 then
        gone[#gone + 1] = hostId
      else
        sets[#sets + 1] = hostId
        sets[#sets + 1] = table.concat(kept, SEP)
      end
    end
    if #sets > 0 then redis.call('HSET', KEYS[2], unpack(sets)) end
    if #gone > 0 then
      redis.call('HDEL', KEYS[2], unpack(gone))
      redis.call('HDEL', KEYS[3], unpack(gone))
    end
  end
end
`

/** ARGV: the owner, and the same as a glob pattern of fields (`*|owner`, escaped). How many entries were deleted. */
export const CLEAR_OWN = HELPERS + DELETE_ALL + `
local mine = {}
local suffix = SEP .. ARGV[1]
local cursor = '0'
repeat
  local page = redis.call('HSCAN', KEYS[1], cursor, 'MATCH', ARGV[2], 'COUNT', 1000)
  cursor = page[1]
  local fields = page[2]
  for i = 1, #fields, 2 do
    local f = fields[i]
    if string.sub(f, -#suffix) == suffix then mine[#mine + 1] = f end
  end
until cursor == '0'
deleteAll(mine)
return #mine`

/** ARGV: now. How many expired entries were deleted. */
export const SWEEP = HELPERS + DELETE_ALL + `
local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', ARGV[1])
deleteAll(expired)
return #expired`
