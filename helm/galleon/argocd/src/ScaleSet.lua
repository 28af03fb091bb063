-- In order: a faulted upgrade to the version the ScaleSet targets is Degraded;
-- Stalled=True is Degraded (the operator cannot go on, even mid-upgrade);
-- a running upgrade is Suspended under spec.paused or while a quarantined version or
-- a closed maintenance window holds it (the Ready reason says which), else
-- Progressing; then the Ready condition: True is Healthy, anything else Progressing.

-- Ready reasons of a running upgrade that waits for a person or a clock, not for
-- the operator (galleon.core.reasons).
local HELD = {
  VersionQuarantined = true,
  OutsideMaintenanceWindow = true,
  InsideDenyWindow = true,
}

local function count(value)
  if value == nil then
    return "0"
  end
  return tostring(value)
end

-- "1.0.0 to 1.0.2"
local function versions(upgrade)
  local to = upgrade.toVersion or "?"
  if upgrade.fromVersion == nil then
    return "to " .. to
  end
  return upgrade.fromVersion .. " to " .. to
end

-- "batch 2 of 5, 2 upgraded" (and failed instances, when there are any)
local function batches(upgrade)
  local progress = upgrade.progress or {}
  local line = "batch " .. count(upgrade.currentBatch) .. " of " .. count(upgrade.totalBatches)
    .. ", " .. count(progress.successfulInstanceCount) .. " upgraded"
  if progress.failedInstanceCount ~= nil and progress.failedInstanceCount > 0 then
    line = line .. ", " .. tostring(progress.failedInstanceCount) .. " failed"
  end
  return line
end

local function joined(indexes)
  local names = {}
  for _, index in ipairs(indexes or {}) do
    table.insert(names, tostring(index))
  end
  return table.concat(names, ", ")
end

local function health()
  local status = obj.status
  local upgrade = status.rollingUpgrade or {}
  local running = upgrade.runningStatus or {}

  -- A fault counts while the ScaleSet still targets the faulted version; once the
  -- target moved on, the conditions below say how the fleet is.
  if running.code == "Faulted"
    and (status.targetVersion == nil or status.targetVersion == upgrade.toVersion) then
    local message = "upgrade " .. versions(upgrade) .. " faulted"
    if upgrade.error ~= nil then
      message = message .. ": " .. (upgrade.error.code or "Faulted")
      if upgrade.error.message ~= nil and upgrade.error.message ~= "" then
        message = message .. ": " .. upgrade.error.message
      end
    end
    if upgrade.phase == "RollingBack" then
      message = message .. "; rolling instances " .. joined(upgrade.batchInstances) .. " back to "
        .. (upgrade.fromVersion or "the previous version")
    end
    return "Degraded", message
  end

  local stalled = condition("Stalled")
  if stalled ~= nil and stalled.status == "True" then
    return "Degraded", explain(stalled, "Stalled")
  end

  if running.code == "RollingForward" then
    if obj.spec ~= nil and obj.spec.paused == true then
      local how = "paused"
      if upgrade.phase ~= "Pausing" then
        how = "pausing after the running batch"
      end
      return "Suspended", "upgrade " .. versions(upgrade) .. " " .. how .. ": " .. batches(upgrade)
        .. " (spec.paused is true)"
    end
    local ready = condition("Ready")
    if ready ~= nil and ready.status ~= "True" and HELD[ready.reason or ""] then
      return "Suspended", "upgrade " .. versions(upgrade) .. " held: " .. batches(upgrade)
        .. " (" .. explain(ready, ready.reason) .. ")"
    end
    local message = "upgrading " .. versions(upgrade) .. ": " .. batches(upgrade)
    if upgrade.cancelRequested == true then
      message = message .. "; cancel requested: stopping after this batch"
    end
    return "Progressing", message
  end

  local ready = condition("Ready")
  if ready ~= nil and ready.status == "True" then
    return "Healthy", explain(ready, "Ready")
  end
  return "Progressing", explain(ready, "waiting for the operator's Ready condition")
end
