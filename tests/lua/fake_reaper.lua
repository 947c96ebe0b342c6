-- A fake `reaper` API table for running Sideman's ReaScripts under plain lua5.4.
--
-- It keeps a tiny model of a project (tracks, their items, the edit cursor, the selection,
-- the last touched track, a tempo map, ExtState) and records every call in order, so a test
-- can check what a script asked REAPER to do and what the project looks like afterwards.
--
--   local fake = require("fake_reaper").install{tempo = {{0, 120}, {8, 60}}, cursor = 3.5}
--   dofile("sideman_import_take.lua")
--   fake.dump(io.stdout)

local M = {}

local function format_value(v)
  if type(v) == "number" then return string.format("%.17g", v) end
  if type(v) == "table" and v.kind == "track" then return "track#" .. v.id end
  return tostring(v)
end

function M.install(config)
  config = config or {}
  local fake = {calls = {}, tracks = {}, cursor = config.cursor or 0, undo_depth = 0,
                ext = config.ext or {}, last_touched = nil, next_track_id = 1}
  local tempo = config.tempo or {{0, 120}} -- {start qn, bpm}, sorted

  local function record(name, ...)
    local n = select("#", ...)
    local call = {name = name, n = n, ...}
    fake.calls[#fake.calls + 1] = call
  end

  local function track_index(track)
    for i, t in ipairs(fake.tracks) do if t == track then return i end end
  end

  local api = {}

  function api.GetOS() record("GetOS"); return config.os or "Other" end
  function api.GetExtState(section, key)
    record("GetExtState", section, key)
    return fake.ext[section .. "/" .. key] or ""
  end
  function api.SetExtState(section, key, value, persist)
    record("SetExtState", section, key, value, persist)
    fake.ext[section .. "/" .. key] = value
  end
  function api.DeleteExtState(section, key, persist)
    record("DeleteExtState", section, key, persist)
    fake.ext[section .. "/" .. key] = nil
  end
  function api.GetUserInputs(title, n, captions, values)
    record("GetUserInputs", title, n, captions, values)
    if config.user_input == nil then return false, values end
    return true, config.user_input
  end
  function api.ShowConsoleMsg(text) record("ShowConsoleMsg", text) end
  function api.ShowMessageBox(text, title, kind) record("ShowMessageBox", text, title, kind); return 1 end
  function api.file_exists(path)
    record("file_exists", path)
    local f = io.open(path, "rb")
    if f then f:close() return true end
    return false
  end

  function api.TimeMap2_QNToTime(project, qn)
    record("TimeMap2_QNToTime", project, qn)
    local seconds = 0
    for i, segment in ipairs(tempo) do
      local start, bpm = segment[1], segment[2]
      local stop = tempo[i + 1] and tempo[i + 1][1] or math.huge
      if qn <= start then break end
      seconds = seconds + (math.min(qn, stop) - start) * 60 / bpm
    end
    return seconds
  end
  function api.GetCursorPosition() record("GetCursorPosition"); return fake.cursor end
  function api.SetEditCurPos(time, moveview, seekplay)
    record("SetEditCurPos", time, moveview, seekplay)
    fake.cursor = time
  end

  function api.PreventUIRefresh(delta) record("PreventUIRefresh", delta) end
  function api.UpdateArrange() record("UpdateArrange") end
  function api.Undo_BeginBlock()
    record("Undo_BeginBlock")
    fake.undo_depth = fake.undo_depth + 1
  end
  function api.Undo_EndBlock(description, flags)
    record("Undo_EndBlock", description, flags)
    fake.undo_depth = fake.undo_depth - 1
  end

  function api.CountTracks(project) record("CountTracks", project); return #fake.tracks end
  function api.InsertTrackAtIndex(index, defaults)
    record("InsertTrackAtIndex", index, defaults)
    local track = {kind = "track", id = fake.next_track_id, name = "", items = {}, selected = false}
    fake.next_track_id = fake.next_track_id + 1
    table.insert(fake.tracks, index + 1, track)
  end
  function api.GetTrack(project, index) record("GetTrack", project, index); return fake.tracks[index + 1] end
  function api.DeleteTrack(track)
    record("DeleteTrack", track)
    table.remove(fake.tracks, track_index(track))
  end
  function api.GetSetMediaTrackInfo_String(track, key, value, set)
    record("GetSetMediaTrackInfo_String", track, key, value, set)
    assert(key == "P_NAME", "the fake only knows P_NAME")
    if set then track.name = value end
    return true, track.name
  end
  function api.SetOnlyTrackSelected(track)
    record("SetOnlyTrackSelected", track)
    for _, t in ipairs(fake.tracks) do t.selected = (t == track) end
  end
  function api.Main_OnCommand(command, flag)
    record("Main_OnCommand", command, flag)
    if command == 40914 then -- Track: Set first selected track as last touched track
      for _, t in ipairs(fake.tracks) do
        if t.selected then fake.last_touched = t break end
      end
    end
  end
  function api.InsertMedia(path, mode)
    record("InsertMedia", path, mode)
    -- mode 0 adds to the last touched track at the edit cursor, then moves the cursor to the
    -- end of the new item (as REAPER does); insert_fails models an unreadable file
    if config.insert_fails or mode ~= 0 or fake.last_touched == nil then return 0 end
    local item = {position = fake.cursor, path = path, length = 2.0}
    table.insert(fake.last_touched.items, item)
    fake.cursor = fake.cursor + item.length
    return 1
  end
  function api.CountTrackMediaItems(track) record("CountTrackMediaItems", track); return #track.items end

  -- any other function is a call the fake does not model: fail loudly
  setmetatable(api, {__index = function(_, name) error("fake reaper has no " .. name, 2) end})
  _G.reaper = api

  function fake.dump(out)
    for _, call in ipairs(fake.calls) do
      local parts = {"CALL", call.name}
      for i = 1, call.n do parts[#parts + 1] = format_value(call[i]) end
      out:write(table.concat(parts, "\t"):gsub("\n", "\\n"), "\n")
    end
    for i, t in ipairs(fake.tracks) do
      local items = {}
      for _, item in ipairs(t.items) do items[#items + 1] = format_value(item.position) .. "@" .. item.path end
      out:write(table.concat({"TRACK", i - 1, t.name, table.concat(items, ";")}, "\t"), "\n")
    end
    out:write("CURSOR\t", format_value(fake.cursor), "\n")
    out:write("UNDO_DEPTH\t", fake.undo_depth, "\n")
    for key, value in pairs(fake.ext) do out:write("EXT\t", key, "\t", value, "\n") end
  end

  return fake
end

return M
