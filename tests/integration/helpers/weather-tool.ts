/**
 * The one tool the real-model tests force a call to, in the shapes the two
 * SDKs take: a city bounded in length so the grammar ends the call quickly.
 */
export const weather = {
  name: "get_weather",
  description: "Current weather in a city",
  parameters: {
    type: "object",
    properties: { city: { type: "string", maxLength: 30 } },
    required: ["city"],
    additionalProperties: false,
  },
};

export const WEATHER_QUESTION = "What is the weather in Paris?";

/** The same tool as Anthropic's `tools` entry. */
export const anthropicWeather = {
  name: weather.name,
  description: weather.description,
  input_schema: { ...weather.parameters, type: "object" as const },
};
