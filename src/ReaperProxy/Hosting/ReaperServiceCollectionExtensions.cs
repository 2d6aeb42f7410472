using Microsoft.Extensions.DependencyInjection.Extensions;
using OpenTelemetry.Metrics;
using ReaperProxy.Admin;
using ReaperProxy.Configuration;
using ReaperProxy.Admission;
using ReaperProxy.Proxying;
using ReaperProxy.Relay;
using ReaperProxy.Metrics;
using Yarp.ReverseProxy.Forwarder;

namespace ReaperProxy.Hosting;

/// <summary>Registration of ReaperProxy's services and its place in YARP's proxy pipeline.</summary>
public static class ReaperServiceCollectionExtensions
{
    /// <summary>The meters exported on <c>/metrics</c> beside ReaperProxy's own.</summary>
    public static readonly string[] ExportedMeters =
    [
        "Microsoft.AspNetCore.Hosting",
        "Microsoft.AspNetCore.Server.Kestrel",
        "Microsoft.AspNetCore.Http.Connections",
        "System.Net.Http",
        "System.Net.NameResolution",
    ];

    /// <summary>
    /// Adds YARP, the reaper's settings, readiness, heartbeat relay and metrics. Returns YARP's builder
    /// so the caller chooses where routes come from (e.g. <c>LoadFromConfig</c>).
    /// </summary>
    public static IReverseProxyBuilder AddReaperProxy(this IServiceCollection services)
    {
        var proxy = services.AddReverseProxy();
        DecorateForwarder(services);

        // Backend connections the relay can read the kernel's progress counter of (see BackendSockets).
        proxy.ConfigureHttpClient((_, handler) =>
        {
            handler.ConnectCallback ??= BackendSockets.ConnectAsync;
            handler.PlaintextStreamFilter ??= BackendSockets.OnPlaintextStreamAsync;
        });
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<ConnectionRegistry>();
        services.TryAddSingleton<ConnectionDrain>();
        services.TryAddSingleton<ConnectionLimiter>();
        services.TryAddSingleton<UpgradeLimiter>();
        services.TryAddSingleton<RouteLimiters>();
        services.TryAddSingleton<ReaperMetrics>();
        services.AddSingleton<IAdminEndpoints, ConnectionListEndpoint>();
        services.TryAddSingleton(sp => new AdminAccess(
            sp.GetRequiredService<ReaperSettingsMonitor>(), sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILoggerFactory>().CreateLogger("ReaperProxy.Admin")));
        services.TryAddSingleton<HeartbeatScheduler>();
        services.AddHostedService(sp => sp.GetRequiredService<HeartbeatScheduler>());
        services.TryAddSingleton<ReaperSettingsMonitor>();
        services.TryAddSingleton<ReadinessState>();
        services.AddHostedService<ReadinessLifetime>();
        services.AddOpenTelemetry().WithMetrics(metrics =>
        {
            metrics.AddMeter(ReaperMetrics.MeterName);
            metrics.AddMeter(ExportedMeters);
            metrics.AddPrometheusExporter();
        });
        return proxy;
    }

    /// <summary>Maps YARP with the heartbeat relay at the head of its proxy pipeline.</summary>
    public static WebApplication MapReaperProxy(this WebApplication app)
    {
        app.MapReverseProxy(pipeline =>
        {
            // First, so the upgrade feature is swapped before anything can upgrade.
            pipeline.UseMiddleware<HeartbeatMiddleware>();
            pipeline.UseSessionAffinity();
            pipeline.UseLoadBalancing();
            pipeline.UsePassiveHealthChecks();
        });
        return app;
    }

    // The heartbeat owns liveness on managed WebSockets: wrap YARP's forwarder (see HeartbeatAwareForwarder).
    private static void DecorateForwarder(IServiceCollection services)
    {
        var descriptor = services.LastOrDefault(d => d.ServiceType == typeof(IHttpForwarder));
        if (descriptor?.ImplementationType is not { } implementation || implementation == typeof(HeartbeatAwareForwarder))
        {
            return;
        }

        services.Remove(descriptor);
        services.TryAdd(new ServiceDescriptor(implementation, implementation, descriptor.Lifetime));
        services.Add(new ServiceDescriptor(typeof(IHttpForwarder),
            sp => new HeartbeatAwareForwarder((IHttpForwarder)sp.GetRequiredService(implementation)), descriptor.Lifetime));
    }

    // Flips /readyz to 503 the moment shutdown begins, while connections drain.
    private sealed class ReadinessLifetime(IHostApplicationLifetime lifetime, ReadinessState readiness) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            lifetime.ApplicationStopping.Register(readiness.MarkStopping);
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
