using Microsoft.Extensions.DependencyInjection.Extensions;
using OpenTelemetry.Metrics;
using ReaperProxy.Admin;
using ReaperProxy.Configuration;

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

    /// <summary>Adds the reaper's settings, readiness, heartbeat relay and metrics.</summary>
    public static IServiceCollection AddReaperProxy(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<ReaperSettingsMonitor>();
        services.TryAddSingleton<ReadinessState>();
        services.AddHostedService<ReadinessLifetime>();
        services.AddOpenTelemetry().WithMetrics(metrics =>
        {
            metrics.AddMeter(ExportedMeters);
            metrics.AddPrometheusExporter();
        });
        return services;
    }

    /// <summary>Maps YARP with the heartbeat relay at the head of its proxy pipeline.</summary>
    public static WebApplication MapReaperProxy(this WebApplication app)
    {
        app.MapReverseProxy(pipeline =>
        {
            pipeline.UseSessionAffinity();
            pipeline.UseLoadBalancing();
            pipeline.UsePassiveHealthChecks();
        });
        return app;
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
