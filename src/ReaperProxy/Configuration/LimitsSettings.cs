namespace ReaperProxy.Configuration;

/// <summary>
/// <c>Reaper:Limits</c>: what one client may make the proxy hold before a WebSocket is up. The request
/// header limits are Kestrel's (<c>KestrelServerLimits</c>), set here with an edge proxy's defaults rather
/// than Kestrel's general-purpose ones, and read at start only (Kestrel takes its limits when it binds);
/// <see cref="MaxUpgradesInProgress"/> is the proxy's own and reloads live.
/// </summary>
/// <param name="RequestHeadersTimeout">
/// The longest a client may take to send a request's headers (Kestrel's <c>RequestHeadersTimeout</c>,
/// whose own default is 30 s); past it Kestrel answers 408 and closes. This is what cuts a slowloris
/// client that sends its upgrade request a byte at a time. Default 10 s.
/// </param>
/// <param name="KeepAliveTimeout">
/// How long an idle HTTP/1.1 connection between requests (or an HTTP/2 connection without streams) is
/// kept (Kestrel's <c>KeepAliveTimeout</c>, own default 130 s). Default 75 s: longer than the 60 s idle
/// timeout of common load balancers in front, so the proxy is not the side that closes a connection the
/// balancer is about to reuse.
/// </param>
/// <param name="MaxRequestHeadersTotalSize">The most bytes of request headers (Kestrel's <c>MaxRequestHeadersTotalSize</c>); more get 431. Default 32 KiB (32768).</param>
/// <param name="MaxRequestHeaderCount">The most request headers (Kestrel's <c>MaxRequestHeaderCount</c>); more get 431. Default 100.</param>
/// <param name="MaxUpgradesInProgress">
/// The most WebSocket requests admitted but not yet upgraded (the backend has not answered the upgrade)
/// at once; the next one gets 503 with <c>Retry-After</c> before any backend is contacted. Bounds what a
/// flood of upgrade requests toward a slow or hanging backend can make the proxy hold. Default 1000.
/// </param>
public sealed record LimitsSettings(
    TimeSpan RequestHeadersTimeout,
    TimeSpan KeepAliveTimeout,
    int MaxRequestHeadersTotalSize,
    int MaxRequestHeaderCount,
    int MaxUpgradesInProgress)
{
    /// <summary>The defaults.</summary>
    public static LimitsSettings Default { get; } = new(
        RequestHeadersTimeout: TimeSpan.FromSeconds(10),
        KeepAliveTimeout: TimeSpan.FromSeconds(75),
        MaxRequestHeadersTotalSize: 32 * 1024,
        MaxRequestHeaderCount: 100,
        MaxUpgradesInProgress: 1000);

    /// <summary>Sets Kestrel's header and keep-alive limits (the public listener's and the admin one's).</summary>
    public void ApplyTo(Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerLimits limits)
    {
        limits.RequestHeadersTimeout = RequestHeadersTimeout;
        limits.KeepAliveTimeout = KeepAliveTimeout;
        limits.MaxRequestHeadersTotalSize = MaxRequestHeadersTotalSize;
        limits.MaxRequestHeaderCount = MaxRequestHeaderCount;
    }
}
