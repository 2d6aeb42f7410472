using System.Globalization;
using System.Text.Json.Serialization;
using ReaperProxy.Relay;

namespace ReaperProxy.Admin;

/// <summary>
/// <c>GET /connections[?limit=N]</c> on the admin listener: the live heartbeat-managed WebSockets,
/// oldest first (zombies are old), at most <c>limit</c> of them (default 100, at most 1000).
/// </summary>
internal sealed class ConnectionListEndpoint(ConnectionRegistry registry, TimeProvider time) : IAdminEndpoints
{
    public const int DefaultLimit = 100;
    public const int MaxLimit = 1000;

    public void Map(IEndpointRouteBuilder admin) => admin.MapGet("/connections", (HttpContext context) =>
    {
        var limit = DefaultLimit;
        if (context.Request.Query.TryGetValue("limit", out var raw) &&
            (!int.TryParse(raw, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit < 1 || limit > MaxLimit))
        {
            return Results.Problem(
                detail: $"limit must be a whole number from 1 to {MaxLimit}, got '{raw}'",
                statusCode: StatusCodes.Status400BadRequest);
        }

        return Results.Json(List(limit), ConnectionListJson.Default.ConnectionList);
    });

    public ConnectionList List(int limit)
    {
        var now = time.GetTimestamp();
        var all = registry.Snapshot().Where(c => c.IsAttached).ToList();
        all.Sort((a, b) => a.OpenedAt.CompareTo(b.OpenedAt));
        var items = new List<ConnectionInfo>(Math.Min(limit, all.Count));
        foreach (var c in all.Take(limit))
        {
            items.Add(new ConnectionInfo(
                c.Id,
                c.RouteId,
                c.ClusterId,
                c.Destination,
                c.ClientAddress,
                c.Protocol,
                c.Policy.Name ?? "(default)",
                c.Policy.Mode.ToString(),
                c.State,
                Math.Round(time.GetElapsedTime(c.OpenedAt, now).TotalSeconds, 3),
                LegInfo(c, Leg.Client, now),
                LegInfo(c, Leg.Backend, now)));
        }

        return new ConnectionList(all.Count, items.Count, limit, items);
    }

    private static ConnectionLeg LegInfo(RelayConnection c, Leg leg, long now) =>
        new(Math.Round(c.IdleFor(leg, now).TotalSeconds, 3), c.LastRtt(leg) is { } rtt ? Math.Round(rtt.TotalMilliseconds, 3) : null, c.ProgressSource(leg));
}

internal sealed record ConnectionList(int Total, int Returned, int Limit, IReadOnlyList<ConnectionInfo> Connections);

internal sealed record ConnectionInfo(
    long Id,
    string Route,
    string Cluster,
    string? Destination,
    string ClientAddress,
    string Protocol,
    string Policy,
    string Mode,
    string State,
    double AgeSeconds,
    ConnectionLeg Client,
    ConnectionLeg Backend);

/// <summary>Per-leg view: seconds since the last byte from it, the last ping round trip, how its consumption is seen.</summary>
internal sealed record ConnectionLeg(double IdleSeconds, double? LastRttMs, string Progress);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true)]
[JsonSerializable(typeof(ConnectionList))]
internal sealed partial class ConnectionListJson : JsonSerializerContext;
