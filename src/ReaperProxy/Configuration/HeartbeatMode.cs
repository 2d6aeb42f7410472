namespace ReaperProxy.Configuration;

/// <summary>What the heartbeat does on a route.</summary>
public enum HeartbeatMode
{
    /// <summary>No frame parsing at all: plain YARP pass-through.</summary>
    Off,

    /// <summary>Pings, detects dead legs and records them, but closes nothing (roll-out mode).</summary>
    Observe,

    /// <summary>Pings, and reaps dead legs (Close 1001 to the survivor, then both TCP connections end).</summary>
    Enforce,
}
