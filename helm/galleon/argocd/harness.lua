-- Runs one Argo CD health script on one object, the way Argo CD runs a script
-- given in argocd-cm, and prints the result as JSON.
--
--   lua5.4 harness.lua galleon.dev_ScaleSet.lua < scaleset.json
--   {"status":"Progressing","message":"upgrading 1.0.0 to 1.0.2: batch 2 of 5, 2 upgraded"}
--
-- Argo CD runs such a script in gopher-lua (Lua 5.1) with only the base, table
-- and package libraries and a reduced os (no `string`, no `math`, unless
-- resource.customizations.useOpenLibs.<group_kind> is set), the object as the
-- global `obj`, JSON numbers as Lua numbers, JSON null as an absent key, and a
-- one second time limit. The script here gets the same: base functions and
-- `table` only, no string methods (("x"):sub fails as it does there), and an
-- instruction budget. A script that passes here uses nothing Argo CD lacks.
--
-- Exit status: 0 with {"status", "message"} on stdout, 1 with the reason on
-- stderr when the script fails or returns something Argo CD would refuse.

local VALID = {
  Healthy = true, Progressing = true, Degraded = true,
  Suspended = true, Missing = true, Unknown = true,
}

local function fail(message)
  io.stderr:write(message, "\n")
  os.exit(1)
end

-- JSON -------------------------------------------------------------------------

local function decode(text)
  local pos = 1
  local value

  local function skip()
    pos = text:find("[^ \t\r\n]", pos) or #text + 1
  end

  local function err(what)
    fail(("bad JSON at byte %d: %s"):format(pos, what))
  end

  local escapes = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f",
                    n = "\n", r = "\r", t = "\t" }

  local function str()
    local out, i = {}, pos + 1
    while true do
      local c = text:sub(i, i)
      if c == "" then err("unterminated string") end
      if c == '"' then break end
      if c == "\\" then
        local e = text:sub(i + 1, i + 1)
        if e == "u" then
          local code = tonumber(text:sub(i + 2, i + 5), 16) or err("bad \\u escape")
          if code >= 0xD800 and code <= 0xDBFF and text:sub(i + 6, i + 7) == "\\u" then
            local low = tonumber(text:sub(i + 8, i + 11), 16) or err("bad \\u escape")
            code = 0x10000 + (code - 0xD800) * 0x400 + (low - 0xDC00)
            i = i + 6
          end
          out[#out + 1] = utf8.char(code)
          i = i + 6
        else
          out[#out + 1] = escapes[e] or err("bad escape \\" .. e)
          i = i + 2
        end
      else
        local j = text:find('["\\]', i) or err("unterminated string")
        out[#out + 1] = text:sub(i, j - 1)
        i = j
      end
    end
    pos = i + 1
    return table.concat(out)
  end

  function value()
    skip()
    local c = text:sub(pos, pos)
    if c == "{" then
      local object = {}
      pos = pos + 1
      skip()
      if text:sub(pos, pos) == "}" then pos = pos + 1 return object end
      while true do
        skip()
        if text:sub(pos, pos) ~= '"' then err("expected a key") end
        local key = str()
        skip()
        if text:sub(pos, pos) ~= ":" then err("expected ':'") end
        pos = pos + 1
        object[key] = value() -- null leaves the key absent, as in Argo CD
        skip()
        local sep = text:sub(pos, pos)
        pos = pos + 1
        if sep == "}" then return object end
        if sep ~= "," then err("expected ',' or '}'") end
      end
    elseif c == "[" then
      local array, n = {}, 0
      pos = pos + 1
      skip()
      if text:sub(pos, pos) == "]" then pos = pos + 1 return array end
      while true do
        n = n + 1
        array[n] = value()
        skip()
        local sep = text:sub(pos, pos)
        pos = pos + 1
        if sep == "]" then return array end
        if sep ~= "," then err("expected ',' or ']'") end
      end
    elseif c == '"' then
      return str()
    elseif text:find("^true", pos) then
      pos = pos + 4
      return true
    elseif text:find("^false", pos) then
      pos = pos + 5
      return false
    elseif text:find("^null", pos) then
      pos = pos + 4
      return nil
    end
    local literal = text:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos) or err("unexpected " .. c)
    pos = pos + #literal
    local number = tonumber(literal) or err("bad number " .. literal)
    -- Integers stay integers, so that tostring(2) is "2" as in gopher-lua.
    return math.tointeger(number) or number
  end

  local result = value()
  skip()
  if pos <= #text then err("trailing data") end
  return result
end

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    local named = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
    return named[c] or ("\\u%04x"):format(c:byte())
  end) .. '"'
end

-- The sandbox --------------------------------------------------------------------

local function sandbox(object)
  local env = {
    assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs,
    pcall = pcall, print = print, rawequal = rawequal, rawget = rawget, rawset = rawset,
    select = select, setmetatable = setmetatable, getmetatable = getmetatable,
    tonumber = tonumber, tostring = tostring, type = type, unpack = table.unpack,
    xpcall = xpcall, _VERSION = "Lua 5.1",
    table = { concat = table.concat, insert = table.insert, remove = table.remove,
              sort = table.sort },
    obj = object,
  }
  env._G = env
  return env
end

local script_path = arg[1] or fail("usage: lua5.4 harness.lua SCRIPT.lua < object.json")
local file = io.open(script_path, "r") or fail("cannot open " .. script_path)
local source = file:read("a")
file:close()
local object = decode(io.read("a"))
if type(object) ~= "table" then fail("the object must be a JSON object") end

local chunk, load_error = load(source, "@" .. script_path, "t", sandbox(object))
if not chunk then fail(load_error) end

local string_methods = getmetatable("")
local saved_index = string_methods.__index
string_methods.__index = nil
debug.sethook(function() error("the script ran too long (Argo CD stops it after 1s)") end,
              "", 50000000)
local ok, hs = pcall(chunk)
debug.sethook()
string_methods.__index = saved_index

if not ok then fail("the script failed: " .. tostring(hs)) end
if type(hs) ~= "table" then fail("the script must return a table, not " .. type(hs)) end
if not VALID[hs.status] then fail("invalid health status " .. tostring(hs.status)) end
if hs.message ~= nil and type(hs.message) ~= "string" then
  fail("hs.message must be a string, not " .. type(hs.message))
end
io.write('{"status":', encode_string(hs.status), ',"message":', encode_string(hs.message or ""),
         "}\n")
