-- Sideman end to end in Ardour 7, headless (run by scripts/ardour-e2e.sh through ardour7-lua).
-- Environment: E2E_DIR (work folder), E2E_PLUGIN_TYPE (VST3 or LV2), E2E_PLAY_S (seconds to
-- roll before pressing Generate), E2E_EXPORT_S (length of the exported range, seconds).
--
-- Session (48 kHz, 120 bpm 4/4): two context tracks, each with a generator (Ardour's own Lua
-- DSP "a-Noise" / "SinGen"), feed the input of the "Sideman" bus (the plugin's main input, its
-- fallback context when no sidechain is wired). The transport rolls, Generate goes up via
-- set_processor_param, the host makes the take, the plugin loads it; then the context tracks
-- are re-routed to the master (and away from the bus, so the bus plays only the take) and the
-- session is exported with simple_export. The Python side cross-correlates the export.

local dir = os.getenv("E2E_DIR")
local ptype = os.getenv("E2E_PLUGIN_TYPE") or "VST3"
local play_s = tonumber(os.getenv("E2E_PLAY_S") or "10.5")
local export_s = tonumber(os.getenv("E2E_EXPORT_S") or "22")
local rate = 48000

local function step(msg) print("E2E: " .. msg); io.stdout:flush() end
local function fail(msg) print("E2E-FAIL: " .. msg); io.stdout:flush(); error("E2E-FAIL: " .. msg) end

assert(AudioEngine:set_backend("None (Dummy)", "", ""))
step("backend " .. AudioEngine:current_backend_name())
local s = create_session(dir .. "/session", "sideman-e2e", rate)
if not s then fail("create_session") end
step("session created at " .. dir .. "/session")

-- 120 bpm, 4/4 is Ardour's default tempo map; say so.
local tmap = Temporal.TempoMap.read()
step("tempo " .. tmap:tempo_at(Temporal.timepos_t(0)):note_types_per_minute())

-- context tracks with generators
local function context_track(name, plugin_name, params)
  local tl = s:new_audio_track(1, 2, nil, 1, name, ARDOUR.PresentationInfo.max_order, ARDOUR.TrackMode.Normal, true)
  local t = tl:front()
  local p = ARDOUR.LuaAPI.new_plugin(s, plugin_name, ARDOUR.PluginType.Lua, "")
  if p:isnil() then fail("no Lua DSP " .. plugin_name) end
  t:add_processor_by_index(p, 0, nil, true)
  for i, v in pairs(params) do ARDOUR.LuaAPI.set_processor_param(p, i, v) end
  return t
end
local noise = context_track("Context noise", "ACE Noise", {})
local sine = context_track("Context sine", "SinGen", {[0] = 220, [1] = -12})
step("context tracks: " .. noise:name() .. ", " .. sine:name())

-- the Sideman bus with the plugin
local bl = s:new_audio_route(2, 2, nil, 1, "Sideman", ARDOUR.PresentationInfo.Flag.AudioBus, ARDOUR.PresentationInfo.max_order)
local bus = bl:front()
local sm = ARDOUR.LuaAPI.new_plugin(s, "Sideman", ptype == "LV2" and ARDOUR.PluginType.LV2 or ARDOUR.PluginType.VST3, "")
if sm:isnil() then fail("Sideman " .. ptype .. " not found by Ardour's plugin manager") end
if not bus:add_processor_by_index(sm, 0, nil, true) then fail("add_processor_by_index(Sideman)") end
step("plugin " .. sm:display_name() .. " on bus " .. bus:name())

-- control-input index by label
local pl = sm:to_insert():plugin(0)
local ctl = {}
local n = 0
for j = 0, pl:parameter_count() - 1 do
  if pl:parameter_is_control(j) and pl:parameter_is_input(j) then
    ctl[pl:parameter_label(j)] = n
    labels = (labels or "") .. "[" .. n .. "] " .. pl:parameter_label(j) .. "  "
    n = n + 1
  end
end
local gen = ctl["Generate"]
step("control inputs: " .. tostring(labels))
if not gen and ptype == "LV2" then
  -- JUCE's LV2 wrapper publishes parameters as LV2 patch properties (patch:writable), not
  -- control ports, and Ardour 7's Lua API can set control ports only: the LV2 run stops here.
  fail("the LV2 plugin's parameters are patch properties, which Ardour's Lua API cannot set: " ..
       "Generate cannot be pressed headless (use the VST3)")
end
if not gen then fail("no Generate parameter") end
step("parameters: Generate=" .. gen .. " Take=" .. tostring(ctl["Take"]) .. " Bars=" .. tostring(ctl["Bars"]))

-- routing: context tracks -> Sideman bus input only
local function route_to(t, dest)
  t:output():disconnect_all(nil)
  for c = 0, 1 do
    t:output():audio(c):connect(dest:input():audio(c):name())
  end
end
route_to(noise, bus)
route_to(sine, bus)
step("routed context tracks into the Sideman bus input")
s:save_state("", false, false, false, false, false)

-- roll, press Generate, stop
s:goto_start(false)
s:request_roll(ARDOUR.TransportRequestSource.TRS_UI)
ARDOUR.LuaAPI.usleep(math.floor(play_s * 1e6))
step("rolled " .. play_s .. " s, transport at sample " .. s:transport_sample())
ARDOUR.LuaAPI.set_processor_param(sm, gen, 1)
ARDOUR.LuaAPI.usleep(300000)
ARDOUR.LuaAPI.set_processor_param(sm, gen, 0)
step("Generate pressed at about " .. play_s .. " s (transport keeps rolling)")

-- wait for the take file the host writes, then for the plugin to load it
local take = nil
for i = 1, 600 do
  local f = io.popen("ls " .. dir .. "/host/session/takes/*.wav 2>/dev/null")
  local line = f:read("*l"); f:close()
  if line then take = line break end
  ARDOUR.LuaAPI.usleep(200000)
end
if not take then fail("no take after 120 s (see host log)") end
step("take " .. take .. ", transport at sample " .. s:transport_sample())
s:request_stop(false, false, ARDOUR.TransportRequestSource.TRS_UI)
-- the plugin selects the take (Take parameter > 0) once it has loaded it
local loaded = false
for i = 1, 300 do
  ARDOUR.LuaAPI.usleep(200000)
  if not ctl["Take"] or ARDOUR.LuaAPI.get_processor_param(sm, ctl["Take"]) > 0 then loaded = true break end
end
if not loaded then fail("the plugin did not load the take within 60 s") end
if ctl["Take"] then step("Take parameter " .. tostring(ARDOUR.LuaAPI.get_processor_param(sm, ctl["Take"]))) end

-- re-route: context to master, bus plays only the take
for _, t in ipairs({noise, sine}) do
  t:output():disconnect_all(nil)
  for c = 0, 1 do t:output():audio(c):connect(s:master_out():input():audio(c):name()) end
end
step("context tracks re-routed to master; Sideman bus main input now silent")
s:save_state("", false, false, false, false, false)

-- export the session master over [0, export_s]
local e = s:simple_export()
e:set_range(0, math.floor(export_s * rate))
e:set_folder(dir .. "/export")
e:set_name("mix")
if not e:set_preset("3c0b7e52-1f4d-4a9b-8e7c-6d2a5b9f0e13") then fail("set_preset(Sideman float WAV): scripts/ardour/sideman-float.preset not in ~/.config/ardour7/export") end
if not e:run_export() then fail("run_export") end
step("exported to " .. dir .. "/export")
s:save_state("", false, false, false, false, false)

-- Let go of every route, processor and plugin this script holds, and collect them, while the
-- session still exists: Lua would otherwise free them at exit, after close_session() has
-- deleted the session their destructors reach into (valgrind: invalid reads in
-- ARDOUR::IO::~IO from the LuaState destructor, then glibc aborting with heap corruption).
noise, sine, bl, bus, sm, pl, e, tmap = nil, nil, nil, nil, nil, nil, nil, nil
collectgarbage()
collectgarbage()
s = nil
close_session()
step("done")
quit()
