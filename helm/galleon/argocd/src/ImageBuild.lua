-- In order: phase Succeeded is Healthy; phase Failed is Degraded, and so is
-- Stalled=True (the build cannot go on); any other phase (Pending, Resolving,
-- Building, Pushing, Publishing), or none yet, is Progressing, with how many of
-- the steps are done.

local function text(value, fallback)
  if value == nil or value == "" then
    return fallback
  end
  return tostring(value)
end

-- "3/14 steps done", or nil before the steps are listed.
local function done(steps)
  if steps == nil or #steps == 0 then
    return nil
  end
  local count = 0
  for _, step in ipairs(steps) do
    if step.phase == "Succeeded" or step.phase == "Skipped" then
      count = count + 1
    end
  end
  return tostring(count) .. "/" .. tostring(#steps) .. " steps done"
end

-- Why a build failed: its message, else its failed step's, else the Ready condition's.
local function failure(status)
  if status.message ~= nil and status.message ~= "" then
    return status.message
  end
  for _, step in ipairs(status.steps or {}) do
    if step.phase == "Failed" then
      return "step " .. text(step.name, "?") .. ": " .. text(step.message, "Failed")
    end
  end
  return explain(condition("Ready"), "Failed")
end

local function health()
  local status = obj.status
  if status.phase == "Succeeded" then
    local published = status.imageVersion
    if published ~= nil and published.version ~= nil then
      return "Healthy", "published version " .. tostring(published.version) .. " (ImageVersion "
        .. text(published.name, "?") .. ")"
    end
    return "Healthy", text(status.message, "built")
  end

  if status.phase == "Failed" then
    return "Degraded", "build failed: " .. failure(status)
  end

  local stalled = condition("Stalled")
  if stalled ~= nil and stalled.status == "True" then
    return "Degraded", explain(stalled, "Stalled")
  end

  local message = text(status.phase, "Pending")
  local steps = done(status.steps)
  if steps ~= nil then
    message = message .. " (" .. steps .. ")"
  end
  local why = text(status.message, explain(condition("Ready"), ""))
  if why ~= "" then
    message = message .. ": " .. why
  end
  return "Progressing", message
end
