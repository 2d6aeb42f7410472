using Microsoft.AspNetCore.Http.Features;
using ReaperProxy.Configuration;
using ReaperProxy.Admission;
using ReaperProxy.Metrics;
using ReaperProxy.Relay;
using Yarp.ReverseProxy.Forwarder;

namespace ReaperProxy.Proxying;

/// <summary>
/// Sits in YARP's proxy pipeline. For a WebSocket request (HTTP/1.1 Upgrade or HTTP/2 extended
/// CONNECT, RFC 8441) on a route whose policy is not Off, it swaps the upgrade feature for one that
/// hands YARP a <see cref="RelayConnection"/> wrapped around Kestrel's client stream, and restores
/// the original afterwards. Every WebSocket, Off routes too, takes a slot of <see cref="ConnectionLimiter"/>
/// or is refused with 503. Everything else passes through untouched.
/// </summary>
internal sealed class HeartbeatMiddleware
{
    private readonly RequestDelegate _next;
    private readonly ConnectionRegistry _registry;
    private readonly ReaperSettingsMonitor _settings;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ReaperMetrics _metrics;
    private readonly ConnectionLimiter _limiter;
    private readonly UpgradeLimiter _upgrades;
    private readonly RouteLimiters _routeLimiters;
    private readonly ConnectionDrain _drain;
    private readonly LogThrottle _badRequests;

    public HeartbeatMiddleware(RequestDelegate next, ConnectionRegistry registry, ConnectionLimiter limiter, UpgradeLimiter upgrades, RouteLimiters routeLimiters, ConnectionDrain drain, ReaperSettingsMonitor settings, TimeProvider time, ILoggerFactory loggerFactory, ReaperMetrics metrics)
    {
        _drain = drain;
        _limiter = limiter;
        _upgrades = upgrades;
        _routeLimiters = routeLimiters;
        _metrics = metrics;
        _next = next;
        _registry = registry;
        _settings = settings;
        _time = time;
        _logger = loggerFactory.CreateLogger("ReaperProxy.Heartbeat");
        _badRequests = new LogThrottle(time, TimeSpan.FromSeconds(10));
    }

    // Not async itself, nor is the step that admits a WebSocket: a WebSocket's request keeps one
    // state machine alive for its whole life (PassThroughAsync or RelayAsync), not three.
    public Task InvokeAsync(HttpContext context)
    {
        var upgrade = context.Features.Get<IHttpUpgradeFeature>();
        var connect = context.Features.Get<IHttpExtendedConnectFeature>();
        if (UpgradeRequestRules.Problem(context, upgrade, connect) is { } problem)
        {
            return RefuseBadRequestAsync(context, problem);
        }

        var isH1WebSocket = upgrade is { IsUpgradableRequest: true } &&
            context.Request.Headers.Upgrade.ToString().Contains("websocket", StringComparison.OrdinalIgnoreCase);
        var isH2WebSocket = connect is { IsExtendedConnect: true } &&
            string.Equals(connect.Protocol, "websocket", StringComparison.OrdinalIgnoreCase);
        if (!isH1WebSocket && !isH2WebSocket)
        {
            return _next(context);
        }

        var proxy = context.GetReverseProxyFeature();
        var route = proxy.Route.Config;
        var settings = _settings.Current;
        var max = settings.EffectiveMaxConnections;
        if (_drain.IsDraining)
        {
            // Shutting down: this replica takes no new WebSocket; the client retries (elsewhere).
            _metrics.Refused(route.RouteId, proxy.Cluster.Config.ClusterId, "shutdown");
            return WriteServiceUnavailableAsync(context, "ReaperProxy: shutting down; retry (another replica takes it).\n");
        }

        // Cheapest refusal first; each refusal gives back what was taken before it. All before any backend is contacted.
        var routeId = route.RouteId;
        var clusterId = proxy.Cluster.Config.ClusterId;
        var maxUpgrades = settings.Limits.MaxUpgradesInProgress;
        if (!_upgrades.Limiter.TryEnter(maxUpgrades))
        {
            _metrics.Refused(routeId, clusterId, "upgrade_limit");
            if (_upgrades.Limiter.ShouldLog(out var refusedUpgrades))
            {
                Relay.Log.RefusedUpgrades(_logger, refusedUpgrades, routeId, RelayConnection.ClientAddressOf(context), maxUpgrades);
            }

            return WriteServiceUnavailableAsync(context, "ReaperProxy: too many WebSocket upgrades in progress (Reaper:Limits:MaxUpgradesInProgress); retry later.\n");
        }

        ConnectionLimiter? routeLimiter = null;
        if (settings.MaxConnectionsForRoute(routeId, route.Metadata?.GetValueOrDefault(ReaperSettings.MaxConnectionsMetadataKey)) is { } routeMax)
        {
            routeLimiter = _routeLimiters.For(routeId);
            if (!routeLimiter.TryEnter(routeMax))
            {
                _upgrades.Limiter.Exit();
                _metrics.Refused(routeId, clusterId, "route_limit");
                if (routeLimiter.ShouldLog(out var refusedOnRoute))
                {
                    Relay.Log.RefusedOnRoute(_logger, refusedOnRoute, routeId, RelayConnection.ClientAddressOf(context), routeLimiter.Open, routeMax);
                }

                return WriteServiceUnavailableAsync(context, "ReaperProxy: too many WebSockets open on this route (route metadata ReaperMaxConnections); retry later.\n");
            }
        }

        if (!_limiter.TryEnter(max))
        {
            routeLimiter?.Exit();
            _upgrades.Limiter.Exit();
            return RefuseAsync(context, routeId, clusterId, max);
        }

        // From here the slots are released by PassThroughAsync or RelayAsync, or below if neither starts.
        var ticket = new AdmissionTicket(_limiter, routeLimiter, _upgrades.Limiter);
        try
        {
            // The upgrade is no longer in progress once the response starts: 101 or 200 from the backend, or an error.
            context.Response.OnStarting(AdmissionTicket.OnResponseStarting, ticket);

            // A WebSocket's whole lifetime would otherwise land in http.server.request.duration (Off routes too).
            if (context.Features.Get<IHttpMetricsTagsFeature>() is { } metricsTags)
            {
                metricsTags.MetricsDisabled = true;
            }

            var policyName = route.Metadata?.GetValueOrDefault(ReaperSettings.PolicyMetadataKey);
            var policy = settings.PolicyForRoute(routeId, policyName);
            return policy.Mode == HeartbeatMode.Off
                ? PassThroughAsync(context, ticket)
                : RelayAsync(context, ticket, upgrade, connect, isH1WebSocket, routeId, clusterId, policyName);
        }
        catch
        {
            ticket.Release();
            throw;
        }
    }

    // Plain pass-through; the drain can only end it (no Close can be put into its bytes).
    private async Task PassThroughAsync(HttpContext context, AdmissionTicket ticket)
    {
        try
        {
            using var lease = _drain.TrackPassThrough(context);
            await _next(context);
        }
        finally
        {
            ticket.Release();
        }
    }

    private async Task RelayAsync(HttpContext context, AdmissionTicket ticket, IHttpUpgradeFeature? upgrade, IHttpExtendedConnectFeature? connect, bool isH1WebSocket, string routeId, string clusterId, string? policyName)
    {
        RelayConnection? connection = null;
        try
        {
            var backendSocket = BackendSockets.Track();
            connection = new RelayConnection(_registry.NextId(), context, routeId, clusterId, policyName, _settings, _time, _logger, _metrics, backendSocket);
            // The relay itself is the feature the forwarder looks for (no wrapper object per connection).
            context.Features.Set(connection);
            if (isH1WebSocket)
            {
                context.Features.Set<IHttpUpgradeFeature>(new RelayUpgradeFeature(upgrade!, this, connection, context));
            }
            else
            {
                context.Features.Set<IHttpExtendedConnectFeature>(new RelayExtendedConnectFeature(connect!, this, connection, context));
            }

            await _next(context);
        }
        finally
        {
            context.Features.Set(upgrade);
            context.Features.Set(connect);
            context.Features.Set<RelayConnection>(null);
            if (connection is { IsAttached: true })
            {
                // The request may end only once the relay's read on Kestrel's stream has (see ReadsDone).
                try
                {
                    await connection.ReadsDone.WaitAsync(TimeSpan.FromSeconds(2));
                }
                catch (TimeoutException)
                {
                    // Kestrel completes a cancelled read promptly; never hold the request on it for longer.
                }

                _registry.Remove(connection);
                connection.MarkEnded(FallbackReason(context));
                Relay.Log.ConnectionClosed(_logger, connection.Id, connection.RouteId, connection.Reason.ToTag(), Math.Round(_time.GetElapsedTime(connection.OpenedAt).TotalSeconds, 3));
            }

            ticket.Release();
        }
    }

    // Before YARP has contacted any backend: the client gets a plain 503 it can retry.
    private Task RefuseAsync(HttpContext context, string routeId, string clusterId, int max)
    {
        _metrics.Refused(routeId, clusterId);
        if (_limiter.ShouldLog(out var refused))
        {
            Relay.Log.Refused(_logger, refused, routeId, RelayConnection.ClientAddressOf(context), _limiter.Open, max);
        }

        return WriteServiceUnavailableAsync(context, "ReaperProxy: too many WebSockets open (Reaper:MaxConnections); retry later.\n");
    }

    // A malformed WebSocket request (UpgradeRequestRules), before YARP has contacted any backend. It stays
    // in http.server.request.duration (status 400): metrics are turned off only for admitted WebSockets.
    private Task RefuseBadRequestAsync(HttpContext context, UpgradeProblem problem)
    {
        var proxy = context.GetReverseProxyFeature();
        var routeId = proxy.Route.Config.RouteId;
        _metrics.UpgradeRejected(routeId, proxy.Cluster.Config.ClusterId, problem.Kind);
        _badRequests.Count();
        if (_badRequests.ShouldLog(out var refused))
        {
            Relay.Log.BadRequest(_logger, refused, routeId, RelayConnection.ClientAddressOf(context), problem.Text);
        }

        context.Response.StatusCode = StatusCodes.Status400BadRequest;
        if (!HttpProtocol.IsHttp2(context.Request.Protocol) && !HttpProtocol.IsHttp3(context.Request.Protocol))
        {
            // What follows a request whose framing was in doubt is not read as another request.
            context.Response.Headers.Connection = "close";
        }

        context.Response.ContentType = "text/plain; charset=utf-8";
        return context.Response.WriteAsync($"ReaperProxy: bad WebSocket request: {problem.Text}.\n");
    }

    // Before YARP has contacted any backend: a plain 503 the client can retry.
    private static Task WriteServiceUnavailableAsync(HttpContext context, string text)
    {
        context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        context.Response.Headers.RetryAfter = "5";
        context.Response.ContentType = "text/plain; charset=utf-8";
        return context.Response.WriteAsync(text);
    }

    private Stream Attach(RelayConnection connection, Stream clientStream, HttpContext context)
    {
        var destination = context.GetReverseProxyFeature().ProxiedDestination?.Model.Config.Address;
        if (connection.BackendSocket is { } slot && Uri.TryCreate(destination, UriKind.Absolute, out var address))
        {
            // Should the upgrade have gone out as an HTTP/2 stream (no socket of its own), its backend
            // connections are the ones to watch.
            slot.Shared = BackendSockets.Http2To(address);
        }

        var stream = connection.Attach(clientStream, destination);
        _registry.Add(connection);
        return stream;
    }

    // When neither side closed and the relay did not end the connection, YARP's error says who failed.
    private static CloseReason FallbackReason(HttpContext context) =>
        context.Features.Get<IForwarderErrorFeature>()?.Error switch
        {
            ForwarderError.UpgradeRequestClient or ForwarderError.UpgradeResponseClient => CloseReason.ClientError,
            ForwarderError.UpgradeRequestDestination or ForwarderError.UpgradeResponseDestination => CloseReason.BackendError,
            ForwarderError.UpgradeRequestCanceled or ForwarderError.UpgradeResponseCanceled => CloseReason.ClientError,
            null or ForwarderError.None => CloseReason.BackendClose,
            _ => CloseReason.BackendError,
        };

    private sealed class RelayUpgradeFeature(IHttpUpgradeFeature inner, HeartbeatMiddleware owner, RelayConnection connection, HttpContext context) : IHttpUpgradeFeature
    {
        public bool IsUpgradableRequest => inner.IsUpgradableRequest;

        public async Task<Stream> UpgradeAsync() => owner.Attach(connection, await inner.UpgradeAsync(), context);
    }

    private sealed class RelayExtendedConnectFeature(IHttpExtendedConnectFeature inner, HeartbeatMiddleware owner, RelayConnection connection, HttpContext context) : IHttpExtendedConnectFeature
    {
        public bool IsExtendedConnect => inner.IsExtendedConnect;

        public string? Protocol => inner.Protocol;

        public async ValueTask<Stream> AcceptAsync() => owner.Attach(connection, await inner.AcceptAsync(), context);
    }
}
