using System.Runtime.CompilerServices;
using ReaperProxy.Relay;
using Yarp.ReverseProxy.Forwarder;

namespace ReaperProxy.Proxying;

/// <summary>
/// Decorates YARP's <see cref="IHttpForwarder"/>. YARP's <c>ActivityTimeout</c> (default 100 s) is
/// reset only by bytes passing through its copy loops; the proxy's pings and the pongs it removes do
/// not, so an idle but live WebSocket would still be cut (yarp#1764). On heartbeat-managed WebSockets
/// the heartbeat owns liveness after the upgrade: the activity timeout is lifted there, and still
/// bounds the wait for the backend's upgrade response, as YARP does (504 on expiry).
/// </summary>
internal sealed class HeartbeatAwareForwarder(IHttpForwarder inner) : IHttpForwarder
{
    // YARP's default when a cluster sets no ActivityTimeout.
    private static readonly TimeSpan s_defaultActivityTimeout = TimeSpan.FromSeconds(100);

    // Per cluster configuration and client, not per request: a WebSocket keeps what it is forwarded
    // with for its whole life. YARP passes one config object and one client per cluster (new ones
    // after a reload change the cluster), so these hold one entry per cluster and let go of old ones.
    private static readonly ConditionalWeakTable<ForwarderRequestConfig, ForwarderRequestConfig> s_unlimited = new();
    private static readonly ConditionalWeakTable<HttpMessageInvoker, BoundedInvoker> s_bounded = new();

    public ValueTask<ForwarderError> SendAsync(HttpContext context, string destinationPrefix, HttpMessageInvoker httpClient,
        ForwarderRequestConfig requestConfig, HttpTransformer transformer) =>
        SendAsync(context, destinationPrefix, httpClient, requestConfig, transformer, CancellationToken.None);

    public async ValueTask<ForwarderError> SendAsync(HttpContext context, string destinationPrefix, HttpMessageInvoker httpClient,
        ForwarderRequestConfig requestConfig, HttpTransformer transformer, CancellationToken cancellationToken)
    {
        if (context.Features.Get<RelayConnection>() is not { } relay)
        {
            return await inner.SendAsync(context, destinationPrefix, httpClient, requestConfig, transformer, cancellationToken);
        }

        // The relay ends a connection it reaped through this token: YARP treats it as a cancellation.
        // YARP's middleware passes no token of its own, and then the relay's is used as is: a linked
        // source would be kept for the WebSocket's whole life, about 200 bytes per connection.
        var bounded = Bounded(httpClient, requestConfig.ActivityTimeout ?? s_defaultActivityTimeout);
        var config = s_unlimited.GetValue(requestConfig, static c => c with { ActivityTimeout = Timeout.InfiniteTimeSpan });
        if (!cancellationToken.CanBeCanceled)
        {
            return await inner.SendAsync(context, destinationPrefix, bounded, config, transformer, relay.FinishToken);
        }

        using var finish = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, relay.FinishToken);
        return await inner.SendAsync(context, destinationPrefix, bounded, config, transformer, finish.Token);
    }

    // The cluster's client with the wait for response headers bounded; one per client and timeout.
    private static HttpMessageInvoker Bounded(HttpMessageInvoker client, TimeSpan headersTimeout)
    {
        var entry = s_bounded.GetValue(client, c => new BoundedInvoker(c, headersTimeout));
        if (entry.Timeout != headersTimeout)
        {
            // The same client under another timeout (rare: two clusters sharing a client): the newest wins.
            entry = new BoundedInvoker(client, headersTimeout);
            s_bounded.AddOrUpdate(client, entry);
        }

        return entry.Invoker;
    }

    private sealed class BoundedInvoker(HttpMessageInvoker client, TimeSpan timeout)
    {
        public TimeSpan Timeout { get; } = timeout;

        // Its handler only wraps the cluster's client, which YARP owns and disposes: nothing to dispose here.
        public HttpMessageInvoker Invoker { get; } = new(new ResponseHeadersTimeoutHandler(client, timeout), disposeHandler: false);
    }

    private sealed class ResponseHeadersTimeoutHandler(HttpMessageInvoker inner, TimeSpan timeout) : HttpMessageHandler
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            cts.CancelAfter(timeout);
            return await inner.SendAsync(request, cts.Token);
        }
    }
}
