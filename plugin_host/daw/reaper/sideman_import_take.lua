-- Sideman: import the latest generated take onto a new track.
--
-- `sideman serve --reaper HOST:PORT --reaper-action ID` writes a request file and runs this
-- action through REAPER's OSC control surface after each take; it can also be run by hand
-- from the Action list to import the last take the host announced.
--
-- The request file holds key=value lines: path (the take's WAV), anchor_ppq (its start in
-- quarter notes), name (the track name), instance, take_id, seed, prompt. It is found at
--   1. the ExtState "sideman"/"request_file", if set (sideman_set_request_file.lua sets it)
--   2. $SIDEMAN_SESSION/daw/reaper-request.txt
--   3. ~/.local/share/sideman/session/daw/reaper-request.txt (the host's default session;
--      ~ is %USERPROFILE% on Windows, as for the host)
-- and renamed to <request>.done once imported, so it is never imported twice.

local SECTION = "sideman"
local TITLE = "Sideman"
local SET_FIRST_SELECTED_AS_LAST_TOUCHED = 40914 -- InsertMedia mode 0 adds to that track

local function request_file()
  local configured = reaper.GetExtState(SECTION, "request_file")
  if configured ~= "" then return configured end
  local session = os.getenv("SIDEMAN_SESSION")
  if session == nil or session == "" then
    local windows = reaper.GetOS():match("^Win") ~= nil -- Python's Path.home() there is %USERPROFILE%
    local home = (windows and os.getenv("USERPROFILE")) or os.getenv("HOME") or ""
    session = home .. "/.local/share/sideman/session"
  end
  return session .. "/daw/reaper-request.txt"
end

local function fail(message)
  reaper.ShowConsoleMsg("Sideman: " .. message .. "\n")
  reaper.ShowMessageBox(message, TITLE, 0)
end

-- The request as a table, or nil and the reason it cannot be used.
local function read_request(path)
  local file = io.open(path, "r")
  if file == nil then
    return nil, "No take to import: the request file\n" .. path .. "\ndoes not exist.\n\n" ..
      "Generate a take with `sideman serve --reaper ...` running (an imported take's request " ..
      "is renamed .done), or point the script at the host's session folder with " ..
      "sideman_set_request_file.lua."
  end
  local request = {}
  for line in file:lines() do
    local key, value = line:gsub("\r$", ""):match("^([%w_]+)=(.*)$")
    if key ~= nil then request[key] = value end
  end
  file:close()
  if request.path == nil or request.path == "" then
    return nil, "The request file " .. path .. " names no take (no path= line)."
  end
  request.anchor_ppq = tonumber(request.anchor_ppq)
  if request.anchor_ppq == nil or request.anchor_ppq < 0 then
    return nil, "The request file " .. path .. " has no valid anchor_ppq= line."
  end
  if not reaper.file_exists(request.path) then
    return nil, "The take file\n" .. request.path .. "\nis missing (was the session folder moved " ..
      "or cleaned?). Nothing was imported."
  end
  return request
end

local function track_name(request)
  if request.name ~= nil and request.name ~= "" then return request.name end
  local prompt = request.prompt
  if prompt == nil or prompt == "" then prompt = "Sideman take" end
  return prompt .. " (seed " .. (request.seed or "0") .. ")"
end

-- Insert a new track at the end and import the take on it at the anchor (one undo step).
-- Returns true when the take landed on the track.
local function import(request)
  local name = track_name(request)
  local position = reaper.TimeMap2_QNToTime(0, request.anchor_ppq) -- follows tempo changes
  local cursor = reaper.GetCursorPosition()
  reaper.PreventUIRefresh(1)
  reaper.Undo_BeginBlock()
  local index = reaper.CountTracks(0)
  reaper.InsertTrackAtIndex(index, true)
  local track = reaper.GetTrack(0, index)
  reaper.GetSetMediaTrackInfo_String(track, "P_NAME", name, true)
  reaper.SetOnlyTrackSelected(track)
  reaper.Main_OnCommand(SET_FIRST_SELECTED_AS_LAST_TOUCHED, 0)
  reaper.SetEditCurPos(position, false, false)
  reaper.InsertMedia(request.path, 0)
  local imported = reaper.CountTrackMediaItems(track) > 0
  if not imported then reaper.DeleteTrack(track) end
  reaper.SetEditCurPos(cursor, false, false)
  reaper.Undo_EndBlock("Sideman: import take " .. name, -1)
  reaper.PreventUIRefresh(-1)
  reaper.UpdateArrange()
  return imported
end

local function mark_done(path)
  local done = path .. ".done"
  os.remove(done) -- rename does not replace an existing file on Windows
  local ok, err = os.rename(path, done)
  if not ok then
    reaper.ShowConsoleMsg("Sideman: could not rename " .. path .. " to .done: " .. tostring(err) .. "\n")
  end
end

local function main()
  local path = request_file()
  local request, reason = read_request(path)
  if request == nil then
    fail(reason)
    return
  end
  if import(request) then
    mark_done(path)
  else
    fail("REAPER could not import the take\n" .. request.path)
  end
end

main()
