namespace ReaperProxy.Relay;

/// <summary>The heartbeat's log lines. Event ids are stable: operators alert on them.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 2001, EventName = "ConnectionReaped", Level = LogLevel.Information,
        Message = "Reaped WebSocket: route {Route}, cluster {Cluster}, destination {Destination}, client {Client}: {Leg} leg dead ({Reason}) after {AgeSeconds}s; last pong RTT in ms: client {ClientRttMs}, backend {BackendRttMs}")]
    public static partial void Reaped(ILogger logger, string route, string cluster, string? destination, string client, string leg, string reason, double ageSeconds, string clientRttMs, string backendRttMs);

    [LoggerMessage(EventId = 2002, EventName = "ZombieObserved", Level = LogLevel.Information,
        Message = "Observed zombie WebSocket (Observe mode, left open): route {Route}, cluster {Cluster}, destination {Destination}, client {Client}: {Leg} leg silent ({Reason}) after {AgeSeconds}s; last pong RTT in ms: client {ClientRttMs}, backend {BackendRttMs}")]
    public static partial void ZombieObserved(ILogger logger, string route, string cluster, string? destination, string client, string leg, string reason, double ageSeconds, string clientRttMs, string backendRttMs);

    [LoggerMessage(EventId = 2003, EventName = "IdleTimeout", Level = LogLevel.Information,
        Message = "Closing idle WebSocket (no data frame within IdleTimeout): route {Route}, cluster {Cluster}, destination {Destination}, client {Client}, after {AgeSeconds}s")]
    public static partial void IdleTimeout(ILogger logger, string route, string cluster, string? destination, string client, double ageSeconds);

    [LoggerMessage(EventId = 2004, EventName = "IdleObserved", Level = LogLevel.Information,
        Message = "Observed idle WebSocket (Observe mode, left open): route {Route}, cluster {Cluster}, destination {Destination}, client {Client}, after {AgeSeconds}s")]
    public static partial void IdleObserved(ILogger logger, string route, string cluster, string? destination, string client, double ageSeconds);

    [LoggerMessage(EventId = 2005, EventName = "CloseTimeout", Level = LogLevel.Information,
        Message = "Closing handshake timed out: route {Route}, cluster {Cluster}, destination {Destination}, client {Client}: the {Initiator} sent Close and got no answer within {CloseTimeout}; answering it and ending both connections")]
    public static partial void CloseTimeout(ILogger logger, string route, string cluster, string? destination, string client, string initiator, string closeTimeout);

    [LoggerMessage(EventId = 2014, EventName = "CloseTimeoutObserved", Level = LogLevel.Information,
        Message = "Observed closing handshake timeout (Observe mode, left open): route {Route}, cluster {Cluster}, destination {Destination}, client {Client}: the {Initiator} sent Close and got no answer within {CloseTimeout}")]
    public static partial void CloseTimeoutObserved(ILogger logger, string route, string cluster, string? destination, string client, string initiator, string closeTimeout);

    [LoggerMessage(EventId = 2015, EventName = "DrainStarted", Level = LogLevel.Information,
        Message = "Shutting down: closing {Relayed} WebSocket(s) with Close 1001 and ending {PassThrough} pass-through one(s), spread over {Period} (Reaper:Drain:Period)")]
    public static partial void DrainStarted(ILogger logger, int relayed, int passThrough, string period);

    [LoggerMessage(EventId = 2016, EventName = "DrainCompleted", Level = LogLevel.Information,
        Message = "Drain: all {Count} WebSocket(s) told to close after {Seconds}s; their closing handshakes are bounded by CloseTimeout")]
    public static partial void DrainCompleted(ILogger logger, int count, double seconds);

    [LoggerMessage(EventId = 2017, EventName = "DrainHurried", Level = LogLevel.Warning,
        Message = "Second stop signal: closing the {Count} WebSocket(s) left at once and ending them in 1 s")]
    public static partial void DrainHurried(ILogger logger, int count);

    [LoggerMessage(EventId = 2006, EventName = "ProtocolError", Level = LogLevel.Warning,
        Message = "WebSocket protocol error on route {Route}, cluster {Cluster}, direction {Direction}: {Error}; closing both legs with 1002 (client {Client})")]
    public static partial void ProtocolError(ILogger logger, string route, string cluster, string direction, string error, string client);

    [LoggerMessage(EventId = 2007, EventName = "ProtocolErrorObserved", Level = LogLevel.Warning,
        Message = "WebSocket protocol error on route {Route}, cluster {Cluster}, direction {Direction}: {Error}; Observe mode: the connection continues as plain pass-through")]
    public static partial void ProtocolErrorObserved(ILogger logger, string route, string cluster, string direction, string error);

    [LoggerMessage(EventId = 2008, EventName = "PingSent", Level = LogLevel.Trace,
        Message = "Ping sent on connection {ConnectionId} to the {Leg}")]
    public static partial void PingSent(ILogger logger, long connectionId, string leg);

    [LoggerMessage(EventId = 2009, EventName = "ConnectionClosed", Level = LogLevel.Debug,
        Message = "WebSocket {ConnectionId} on route {Route} ended: {Reason} after {AgeSeconds}s")]
    public static partial void ConnectionClosed(ILogger logger, long connectionId, string route, string reason, double ageSeconds);

    [LoggerMessage(EventId = 2010, EventName = "SchedulerFailed", Level = LogLevel.Error,
        Message = "Heartbeat tick failed for connection {ConnectionId}")]
    public static partial void TickFailed(ILogger logger, long connectionId, Exception exception);

    [LoggerMessage(EventId = 2011, EventName = "BackendWentAway", Level = LogLevel.Information,
        Message = "Backend connection of route {Route}, cluster {Cluster}, destination {Destination} ended without a closing handshake; telling client {Client} with Close 1001")]
    public static partial void BackendWentAway(ILogger logger, string route, string cluster, string? destination, string client);

    [LoggerMessage(EventId = 2012, EventName = "ClientWentAway", Level = LogLevel.Information,
        Message = "Client {Client} of route {Route}, cluster {Cluster} ended its connection without a closing handshake; telling destination {Destination} with Close 1001")]
    public static partial void ClientWentAway(ILogger logger, string client, string route, string cluster, string? destination);

    [LoggerMessage(EventId = 2013, EventName = "ConnectionRefused", Level = LogLevel.Warning,
        Message = "Refused {Refused} WebSocket(s) with 503 since the last such line (latest: route {Route}, client {Client}): {Open} are open and Reaper:MaxConnections is {Max}; at most one such line every 10 s")]
    public static partial void Refused(ILogger logger, long refused, string route, string client, int open, int max);

    [LoggerMessage(EventId = 2018, EventName = "BadWebSocketRequest", Level = LogLevel.Warning,
        Message = "Refused {Refused} malformed WebSocket request(s) with 400 before any backend was contacted, since the last such line (latest: route {Route}, client {Client}: {Problem}); at most one such line every 10 s")]
    public static partial void BadRequest(ILogger logger, long refused, string route, string client, string problem);

    [LoggerMessage(EventId = 2020, EventName = "ConnectionRefusedOnRoute", Level = LogLevel.Warning,
        Message = "Refused {Refused} WebSocket(s) on route {Route} with 503 since the last such line for it (latest: client {Client}): {Open} are open and the route's ReaperMaxConnections is {Max}; at most one such line every 10 s per route")]
    public static partial void RefusedOnRoute(ILogger logger, long refused, string route, string client, int open, int max);

    [LoggerMessage(EventId = 2019, EventName = "UpgradesRefused", Level = LogLevel.Warning,
        Message = "Refused {Refused} WebSocket request(s) with 503 since the last such line (latest: route {Route}, client {Client}): Reaper:Limits:MaxUpgradesInProgress ({Max}) upgrades are waiting for their backends; at most one such line every 10 s")]
    public static partial void RefusedUpgrades(ILogger logger, long refused, string route, string client, int max);
}
