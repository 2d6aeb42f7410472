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

    public ValueTask<ForwarderError> SendAsync(HttpContext context, string destinationPrefix, HttpMessageInvoker httpClient,
        ForwarderRequestConfig requestConfig, HttpTransformer transformer) =>
        SendAsync(context, destinationPrefix, httpClient, requestConfig, transformer, CancellationToken.None);

    public async ValueTask<ForwarderError> SendAsync(HttpContext context, string destinationPrefix, HttpMessageInvoker httpClient,
        ForwarderRequestConfig requestConfig, HttpTransformer transformer, CancellationToken cancellationToken)
    {
        if (context.Features.Get<IHeartbeatRelayFeature>() is not { } relay)
        {
            return await inner.SendAsync(context, destinationPrefix, httpClient, requestConfig, transformer, cancellationToken);
        }

        // The relay ends a connection it reaped through this token: YARP treats it as a cancellation.
        // YARP's middleware passes no token of its own, and then the relay's is used as is: a linked
        // source would be kept for the WebSocket's whole life, about 200 bytes per connection.
        var headersTimeout = requestConfig.ActivityTimeout ?? s_defaultActivityTimeout;
        using var bounded = new HttpMessageInvoker(new ResponseHeadersTimeoutHandler(httpClient, headersTimeout), disposeHandler: true);
        var config = requestConfig with { ActivityTimeout = Timeout.InfiniteTimeSpan };
        if (!cancellationToken.CanBeCanceled)
        {
            return await inner.SendAsync(context, destinationPrefix, bounded, config, transformer, relay.Connection.FinishToken);
        }

        using var finish = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, relay.Connection.FinishToken);
        return await inner.SendAsync(context, destinationPrefix, bounded, config, transformer, finish.Token);
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
