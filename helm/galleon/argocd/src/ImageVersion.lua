-- Failed replication, then Stalled=True (a conflicting version, a source that
-- cannot be read, a missing parent), are Degraded; Completed is Healthy; anything
-- else is Progressing, with each target region's progress.

local function text(value, fallback)
  if value == nil or value == "" then
    return fallback
  end
  return tostring(value)
end

-- "eastus2: Replicating 40% (0/2 replicas)", with the details of a failed region.
local function describe(region)
  local line = text(region.region, "?") .. ": " .. text(region.state, "Unknown") .. " "
    .. text(region.progress, "0") .. "% (" .. text(region.completedReplicas, "0") .. "/"
    .. text(region.desiredReplicas, "0") .. " replicas)"
  if region.state == "Failed" and region.details ~= nil and region.details ~= "" then
    line = line .. ": " .. region.details
  end
  return line
end

local function health()
  local replication = obj.status.replicationStatus or {}
  local summary = replication.summary or {}
  local state = replication.aggregatedState

  if state == "Failed" then
    local failed = {}
    for _, region in ipairs(summary) do
      if region.state == "Failed" then
        table.insert(failed, text(region.region, "?") .. ": " .. text(region.details, "Failed"))
      end
    end
    return "Degraded", "replication failed in " .. tostring(#failed) .. " of "
      .. tostring(#summary) .. " regions: " .. table.concat(failed, "; ")
  end

  local stalled = condition("Stalled")
  if stalled ~= nil and stalled.status == "True" then
    return "Degraded", explain(stalled, "Stalled")
  end

  if state == "Completed" then
    local message = "replicated to " .. text(replication.completedRegions, "all") .. " regions"
    local refused = condition("ReplicaRemovalRefused")
    if refused ~= nil and refused.status == "True" then
      message = message .. "; " .. explain(refused, "ReplicaRemovalRefused")
    end
    return "Healthy", message
  end

  if #summary > 0 then
    local lines = {}
    for _, region in ipairs(summary) do
      table.insert(lines, describe(region))
    end
    return "Progressing", text(replication.completedRegions, "0/" .. tostring(#summary))
      .. " regions replicated; " .. table.concat(lines, "; ")
  end

  -- Not replicating yet: the source is being resolved, or a transient error.
  return "Progressing", explain(condition("Ready"), "waiting for replication to start")
end
