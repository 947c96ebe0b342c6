-- Run one ReaScript against the fake REAPER API and print the call log and final project.
--
--   lua5.4 run_reaper_script.lua SCRIPT [key=value ...]
--
-- keys: cursor (seconds), tempo ("qn:bpm,qn:bpm"), tracks (existing track count),
-- os, ext.<section>/<key> (ExtState), user_input (GetUserInputs answer), insert_fails=1

local here = arg[0]:match("^(.*)[/\\]") or "."
package.path = here .. "/?.lua;" .. package.path
local fake_reaper = require("fake_reaper")

local script = assert(arg[1], "usage: run_reaper_script.lua SCRIPT [key=value ...]")
local config = {ext = {}}
for i = 2, #arg do
  local key, value = arg[i]:match("^([^=]+)=(.*)$")
  assert(key, "bad argument " .. arg[i])
  if key == "cursor" then config.cursor = tonumber(value)
  elseif key == "tempo" then
    config.tempo = {}
    for qn, bpm in value:gmatch("([%d.]+):([%d.]+)") do
      config.tempo[#config.tempo + 1] = {tonumber(qn), tonumber(bpm)}
    end
  elseif key == "insert_fails" then config.insert_fails = value == "1"
  elseif key:match("^ext%.") then config.ext[key:sub(5)] = value
  else config[key] = value end
end

local fake = fake_reaper.install(config)
for _ = 1, tonumber(config.tracks or 0) do
  reaper.InsertTrackAtIndex(reaper.CountTracks(0), true)
end
fake.calls = {} -- the setup calls are not the script's
local ok, err = pcall(dofile, script)
fake.dump(io.stdout)
if not ok then
  io.stdout:write("ERROR\t", tostring(err), "\n")
  os.exit(1)
end
