using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ReaperProxy.LoadTest.Soak;

/// <summary>
/// The proxy's configuration file during the soak, and the changes the periodic reloads make to it.
/// Routes: <c>/ws</c> (healthy, silenced and churn connections; policy <c>soak</c>, never changed by a
/// reload, so every silenced connection has one known deadline), <c>/abort</c> (the churn's backend
/// aborts, same policy), <c>/idle</c> (idle live connections, policy <c>idle</c>, whose PingInterval the
/// valid reloads alternate so live connections adopt new durations), <c>/stats</c> (plain HTTP, to tell
/// that the last good configuration still serves) and one <c>/extra-N</c> route that each valid reload
/// replaces. Every file differs from the one before (the proxy skips a file whose content it has seen).
/// </summary>
internal sealed class SoakConfig(SoakSettings settings)
{
    private static readonly JsonSerializerOptions s_indented = new() { WriteIndented = true };

    // What an invalid reload looks like, in turn: each is one problem in an otherwise changed file
    // (the soak policy shortened, the /stats route gone), so a partial apply would show.
    private static readonly string[] s_invalid = ["bad duration", "unknown policy", "not JSON", "unknown Mode"];

    /// <summary>The file's text for reload <paramref name="version"/> (0 is the initial file).</summary>
    public string Valid(int version)
    {
        var root = Base(version);
        root["Reaper"]!["Policies"]!["idle"]!["PingInterval"] = version % 2 == 0 ? "2s" : "4s";
        return root.ToJsonString(s_indented);
    }

    /// <summary>An invalid file for reload <paramref name="version"/>, and what is wrong with it.</summary>
    public (string Text, string Problem) Invalid(int version, int invalidIndex)
    {
        var problem = s_invalid[invalidIndex % s_invalid.Length];
        var root = Base(version);
        root["Reaper"]!["Policies"]!["soak"]!["PingInterval"] = "1s";
        root["ReverseProxy"]!["Routes"]!.AsObject().Remove("stats");
        switch (problem)
        {
            case "bad duration":
                root["Reaper"]!["Policies"]!["idle"]!["PongTimeout"] = "0s";
                break;
            case "unknown policy":
                root["ReverseProxy"]!["Routes"]!["idle"]!["Metadata"]!["ReaperPolicy"] = "idel";
                break;
            case "unknown Mode":
                root["Reaper"]!["Policies"]!["idle"]!["Mode"] = "Sometimes";
                break;
            default:
                return (root.ToJsonString(s_indented)[..^3], problem);
        }

        return (root.ToJsonString(s_indented), problem);
    }

    /// <summary>Replaces the file atomically (write, then rename), as a ConfigMap update does.</summary>
    public static void Write(string path, string text)
    {
        var temp = path + ".tmp";
        File.WriteAllText(temp, text);
        File.Move(temp, path, overwrite: true);
    }

    private JsonObject Base(int version)
    {
        var backend = $"http://127.0.0.1:{settings.BackendPort}/";
        var soak = new JsonObject
        {
            ["PingInterval"] = Seconds(settings.PingInterval),
            ["PongTimeout"] = Seconds(settings.PongTimeout),
            ["CloseTimeout"] = "3s",
        };
        return new JsonObject
        {
            ["Reaper"] = new JsonObject
            {
                ["LogFormat"] = "Simple",
                ["Drain"] = new JsonObject { ["Period"] = "1s" },
                ["Heartbeat"] = new JsonObject { ["PingInterval"] = "15s", ["PongTimeout"] = "10s" },
                ["Policies"] = new JsonObject
                {
                    ["soak"] = soak,
                    ["idle"] = new JsonObject { ["PingInterval"] = "2s", ["PongTimeout"] = "3s" },
                },
            },
            ["Kestrel"] = new JsonObject
            {
                ["Endpoints"] = new JsonObject
                {
                    ["http1"] = new JsonObject { ["Url"] = $"http://127.0.0.1:{settings.ProxyPort}", ["Protocols"] = "Http1" },
                    ["h2c"] = new JsonObject { ["Url"] = $"http://127.0.0.1:{settings.ProxyH2Port}", ["Protocols"] = "Http2" },
                },
            },
            ["ReverseProxy"] = new JsonObject
            {
                ["Routes"] = new JsonObject
                {
                    ["ws"] = Route("/ws", "soak"),
                    ["abort"] = Route("/abort", "soak"),
                    ["idle"] = Route("/idle", "idle", pathSet: "/ws"),
                    ["stats"] = Route("/stats", null),
                    [$"extra-{version}"] = Route($"/extra-{version}", null),
                },
                ["Clusters"] = new JsonObject
                {
                    ["backend"] = new JsonObject
                    {
                        ["Destinations"] = new JsonObject { ["d1"] = new JsonObject { ["Address"] = backend } },
                    },
                },
            },
        };
    }

    private static JsonObject Route(string path, string? policy, string? pathSet = null)
    {
        var route = new JsonObject { ["ClusterId"] = "backend", ["Match"] = new JsonObject { ["Path"] = path } };
        if (policy is not null)
        {
            route["Metadata"] = new JsonObject { ["ReaperPolicy"] = policy };
        }

        if (pathSet is not null)
        {
            route["Transforms"] = new JsonArray(new JsonObject { ["PathSet"] = pathSet });
        }

        return route;
    }

    private static string Seconds(TimeSpan value) => value.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture) + "s";
}
